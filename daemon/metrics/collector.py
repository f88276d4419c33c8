"""/metrics: a custom collector that reads in-memory aggregates at scrape time and never the database."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from daemon.metrics.counters import CounterStore, PersistedHistogram

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "itsmd_alerts_received_total": ("Alerts received, by ingest path.", ("source",)),
    "itsmd_alerts_rejected_total": ("Alerts or requests refused, by reason.", ("reason",)),
    "itsmd_auth_failures_total": ("Requests refused for missing or wrong credentials (401, 403).", ("group",)),
    "itsmd_notifications_total": (
        "Notifications by channel (alertmanager: published states sent or failed; webhook: deliveries "
        "delivered, retried, dead or folded into a digest), kind and outcome.",
        ("channel", "kind", "outcome"),
    ),
    "itsmd_alerts_looped_back_total": (
        "itsmd's own published alerts that came back to its ingest: recognised and not ingested.",
        ("source",),
    ),
}


class ItsmdCollector(Collector):
    def __init__(
        self,
        counters: CounterStore,
        ingest_duration: PersistedHistogram,
        *,
        version: str,
        firing_alerts: Callable[[], int],
        store_up: Callable[[], bool],
    ) -> None:
        self._counters = counters
        self._ingest_duration = ingest_duration
        self._version = version
        self._firing_alerts = firing_alerts
        self._store_up = store_up

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "itsmd_build_info", "itsmd version and Python it runs on.", labels=["version", "python"]
        )
        info.add_metric([self._version, platform.python_version()], 1)
        yield info
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(label_names))
            for labels, value in sorted(self._counters.series(name)):
                values = dict(labels)
                family.add_metric([values.get(n, "") for n in label_names], value)
            yield family
        yield GaugeMetricFamily("itsmd_alerts_firing", "Alerts firing now.", value=self._firing_alerts())
        yield GaugeMetricFamily("itsmd_store_up", "1 while the store accepts writes.", value=int(self._store_up()))
        buckets, total = self._ingest_duration.cumulative()
        yield HistogramMetricFamily(
            self._ingest_duration.name,
            "Time from an ingest request's arrival to its answer, durable commit included.",
            buckets=buckets,
            sum_value=total,
        )
