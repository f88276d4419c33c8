"""What housekeeping reports on /metrics: rows it removed per kind of record, when it last ran, store size."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.housekeeping.job import Housekeeping


class HousekeepingCollector(Collector):
    def __init__(self, job: Housekeeping) -> None:
        self._job = job

    def collect(self) -> Iterable[Metric]:
        deleted = CounterMetricFamily(
            "itsmd_housekeeping_deleted",
            "Rows housekeeping pruned by retention policy since start, by kind of record.",
            labels=["record"],
        )
        for record, n in sorted(self._job.deleted.items()):
            deleted.add_metric([record], n)
        yield deleted
        last = GaugeMetricFamily(
            "itsmd_housekeeping_last_run_timestamp_seconds",
            "When housekeeping last finished a run (0: not yet since start).",
        )
        last.add_metric([], self._job.last_run or 0.0)
        yield last
        if self._job.database_bytes is not None:
            size = GaugeMetricFamily("itsmd_database_size_bytes", "Size of the store at the last housekeeping run.")
            size.add_metric([], self._job.database_bytes)
            yield size
