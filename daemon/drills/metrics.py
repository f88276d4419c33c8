"""Drill metrics, read from memory at scrape time (the counter from the CounterStore, so it survives restarts).

    itsmd_drills_total{service,outcome}           drill runs that ended (passed, failed, interrupted, skipped,
                                                  error)
    itsmd_drill_recovery_seconds{service}         the latest measured recovery time
    itsmd_drill_rto_seconds{service}              the RTO of the service's drills (the strictest)
    itsmd_drill_last_success_timestamp_seconds{service}
                                                  when the service's latest passed drill ended
    itsmd_drill_never_passed{service}             1 for a service with scheduled drills and no passed drill on
                                                  record, 0 once one passed

Services come from the drills file (catalogue services), so labels are bounded. The value gauges exist only for
services that have a value: no recovery measured yet means no series, rather than a misleading 0, and no
success means no timestamp. That absence would hide the worst case from `time() - last_success > ...`, so
itsmd_drill_never_passed states it, and ItsmdDrillOverdue fires on it too.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.drills.runner import DRILLS_TOTAL, DrillRunner
from daemon.metrics.counters import CounterStore


class DrillCollector(Collector):
    def __init__(self, counters: CounterStore, runner: DrillRunner) -> None:
        self._counters = counters
        self._runner = runner

    def collect(self) -> Iterable[Metric]:
        total = CounterMetricFamily(
            DRILLS_TOTAL.removesuffix("_total"),
            "Continuity drill runs that ended, by outcome.",
            labels=["service", "outcome"],
        )
        for labels, value in sorted(self._counters.series(DRILLS_TOTAL)):
            values = dict(labels)
            total.add_metric([values.get("service", ""), values.get("outcome", "")], value)
        yield total
        yield _gauge(
            "itsmd_drill_recovery_seconds",
            "Recovery time measured by the service's latest drill that measured one.",
            self._runner.last_recovery,
        )
        yield _gauge(
            "itsmd_drill_rto_seconds", "Recovery time objective of the service's drills.", self._runner.rto_by_service()
        )
        yield _gauge(
            "itsmd_drill_last_success_timestamp_seconds",
            "When the service's latest passed drill ended.",
            self._runner.last_success,
        )
        success = self._runner.last_success
        yield _gauge(
            "itsmd_drill_never_passed",
            "1 when the service has scheduled drills and none of its drills has ever passed; 0 once one passed.",
            {service: 0.0 if service in success else 1.0 for service in self._runner.scheduled_services()},
        )


def _gauge(name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["service"])
    for service, value in sorted(values.items()):
        family.add_metric([service], value)
    return family
