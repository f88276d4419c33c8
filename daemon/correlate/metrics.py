"""Incident and problem metrics: counters kept in the CounterStore (they survive restarts), histograms of
time to acknowledge and resolve, and a collector that reads memory only.

`service` is always a catalogue service (or the default service), `priority` P1..P5: label values from
alerts never become series of their own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.correlate.priority import PRIORITIES
from daemon.correlate.sla import TARGETS
from daemon.metrics.counters import CounterStore, LabelPairs
from daemon.model import Incident, ProblemStatus

if TYPE_CHECKING:
    from daemon.correlate.ruleset import RuleSet

OPENED = "itsmd_incidents_opened_total"
RESOLVED = "itsmd_incidents_resolved_total"
REOPENED = "itsmd_incidents_reopened_total"
BREACHES = "itsmd_incident_sla_breaches_total"
WITHDRAWN = "itsmd_incident_sla_breaches_withdrawn_total"
REPEATS = "itsmd_incidents_repeat_total"
PROBLEMS_OPENED = "itsmd_problems_opened_total"
ACK_DURATION = "itsmd_incident_acknowledge_duration_seconds"
RESOLUTION_DURATION = "itsmd_incident_resolution_duration_seconds"
RESOLVED_BY = ("alerts", "expiry", "manual")

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    OPENED: ("Incidents opened.", ("service", "priority")),
    RESOLVED: ("Incidents resolved, by what resolved them.", ("service", "priority", "resolved_by")),
    REOPENED: ("Resolved incidents reopened.", ("service",)),
    BREACHES: ("SLA targets missed (respond, resolve).", ("service", "priority", "target")),
    WITHDRAWN: (
        "SLA breaches withdrawn: recorded while the incident looked open, but it ended before the target by the "
        "evidence (an expiry's estimated end).",
        ("service", "priority", "target"),
    ),
    REPEATS: ("Incidents that recur: linked to a problem of their signature.", ("service", "priority")),
    PROBLEMS_OPENED: ("Problems opened (candidates from recurring incidents).", ("service",)),
}
# Bucket bounds on the default SLA targets (DESIGN.md 2), so a bucket answers "within target?".
ACK_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0)
RESOLUTION_BUCKETS = (900.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0, 5 * 86400.0, 14 * 86400.0)


def pairs(**labels: str) -> LabelPairs:
    return tuple(sorted(labels.items()))


class LabelledHistogram:
    """A histogram per priority whose bucket counts live in the CounterStore (like PersistedHistogram)."""

    def __init__(self, counters: CounterStore, name: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.buckets = tuple(sorted(buckets))
        self._counters = counters
        self._les = [repr(float(b)) for b in self.buckets] + ["+Inf"]
        for priority in PRIORITIES:
            for le in self._les:
                counters.ensure(f"{name}_bucket", pairs(le=le, priority=priority))
            counters.ensure(f"{name}_sum", pairs(priority=priority))
            counters.ensure(f"{name}_count", pairs(priority=priority))

    def observe(self, priority: str, value: float) -> None:
        le = self._les[bisect.bisect_left(self.buckets, value)]
        self._counters.inc(f"{self.name}_bucket", pairs(le=le, priority=priority))
        self._counters.inc(f"{self.name}_sum", pairs(priority=priority), value)
        self._counters.inc(f"{self.name}_count", pairs(priority=priority))

    def family(self, doc: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, doc, labels=["priority"])
        for priority in PRIORITIES:
            running = 0.0
            buckets = []
            for le in self._les:
                running += self._counters.get(f"{self.name}_bucket", pairs(le=le, priority=priority))
                buckets.append((le, running))
            family.add_metric([priority], buckets, self._counters.get(f"{self.name}_sum", pairs(priority=priority)))
        return family


class IncidentMetrics:
    """What the correlator and the problem manager count; series exist at 0 for every catalogue service."""

    def __init__(self, counters: CounterStore, ruleset: RuleSet) -> None:
        self._counters = counters
        self.ack = LabelledHistogram(counters, ACK_DURATION, ACK_BUCKETS)
        self.resolution = LabelledHistogram(counters, RESOLUTION_DURATION, RESOLUTION_BUCKETS)
        self.services: list[str] = []
        self._known: set[str] = set()
        self._default = ""
        self.set_rules(ruleset)

    def set_rules(self, ruleset: RuleSet) -> None:
        self.services = ruleset.catalogue.names()
        self._known = set(self.services)
        self._default = ruleset.catalogue.default_service
        c = self._counters
        for service in self.services:
            c.ensure(REOPENED, pairs(service=service))
            c.ensure(PROBLEMS_OPENED, pairs(service=service))
            for priority in PRIORITIES:
                c.ensure(OPENED, pairs(service=service, priority=priority))
                c.ensure(REPEATS, pairs(service=service, priority=priority))
                for by in RESOLVED_BY:
                    c.ensure(RESOLVED, pairs(service=service, priority=priority, resolved_by=by))
                for target in TARGETS:
                    c.ensure(BREACHES, pairs(service=service, priority=priority, target=target))
                    c.ensure(WITHDRAWN, pairs(service=service, priority=priority, target=target))

    def service(self, name: str) -> str:
        """The metric label of a service: itself when in the catalogue, else the default service (incidents
        from before a reload that dropped their service)."""
        return name if name in self._known else self._default

    def opened(self, i: Incident) -> None:
        self._counters.inc(OPENED, pairs(service=self.service(i.service), priority=i.priority))

    def resolved(self, i: Incident, by: str, duration: float) -> None:
        self._counters.inc(RESOLVED, pairs(service=self.service(i.service), priority=i.priority, resolved_by=by))
        if i.reopen_count == 0:  # time to the first resolution; a reopened incident is not counted twice
            self.resolution.observe(i.priority, duration)

    def reopened(self, i: Incident) -> None:
        self._counters.inc(REOPENED, pairs(service=self.service(i.service)))

    def acknowledged(self, i: Incident, duration: float) -> None:
        self.ack.observe(i.priority, duration)

    def breached(self, i: Incident, target: str) -> None:
        self._counters.inc(BREACHES, pairs(service=self.service(i.service), priority=i.priority, target=target))

    def withdrawn(self, i: Incident, target: str) -> None:
        self._counters.inc(WITHDRAWN, pairs(service=self.service(i.service), priority=i.priority, target=target))

    def repeated(self, i: Incident) -> None:
        self._counters.inc(REPEATS, pairs(service=self.service(i.service), priority=i.priority))


class IncidentCollector(Collector):
    def __init__(
        self,
        counters: CounterStore,
        metrics: Callable[[], IncidentMetrics],
        open_incidents: Callable[[], dict[tuple[str, str], int]],
        open_problems: Callable[[], dict[tuple[str, str], int]],
        flapping: Callable[[], int],
    ) -> None:
        self._counters = counters
        self._metrics = metrics
        self._open_incidents = open_incidents
        self._open_problems = open_problems
        self._flapping = flapping

    def collect(self) -> Iterable[Metric]:
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(label_names))
            for labels, value in sorted(self._counters.series(name)):
                values = dict(labels)
                if set(values) == set(label_names):
                    family.add_metric([values[n] for n in label_names], value)
            yield family
        metrics = self._metrics()
        current = self._open_incidents()
        gauge = GaugeMetricFamily(
            "itsmd_incidents_open", "Incidents open or acknowledged now.", labels=["service", "priority"]
        )
        for service in sorted(set(metrics.services) | {s for s, _ in current}):
            for priority in PRIORITIES:
                gauge.add_metric([service, priority], current.get((service, priority), 0))
        yield gauge
        problems = self._open_problems()
        gauge = GaugeMetricFamily(
            "itsmd_problems_open", "Problems not resolved, by status.", labels=["service", "status"]
        )
        for service in sorted(set(metrics.services) | {s for s, _ in problems}):
            for status in (ProblemStatus.CANDIDATE, ProblemStatus.CONFIRMED, ProblemStatus.KNOWN_ERROR):
                gauge.add_metric([service, status.value], problems.get((service, status.value), 0))
        yield gauge
        yield GaugeMetricFamily("itsmd_alerts_flapping", "Alerts flapping now.", value=self._flapping())
        yield metrics.ack.family("Time from an incident's opening to its first acknowledgement.")
        yield metrics.resolution.family("Time from an incident's opening to its first resolution.")
