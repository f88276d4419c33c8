"""Runbook and change metrics: counters that survive restarts (CounterStore), gauges read from memory.

    itsmd_runbook_runs_total{runbook,mode,outcome}        runs that ended, by final status (counted by the engine)
    itsmd_runbook_step_duration_seconds{action}           histogram of step executions (every attempt's step)
    itsmd_runbook_breaker_open{runbook}                   1 while the runbook's circuit breaker is open
    itsmd_changes_total{service,change_type,outcome}      changes closed (counted by the change ledger)
    itsmd_changes_causing_incidents_total{service}        incidents linked to a change as its suspected cause

Labels are bounded: runbook names come from the loaded files, actions from the action registry, services from
the correlator's bounded set. Every loaded runbook's series start at 0 so rate() has no gap.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.changes.ledger import CAUSING_INCIDENTS, CHANGES_TOTAL
from daemon.metrics.counters import CounterStore, LabelPairs
from daemon.runbook.actions import ACTIONS
from daemon.runbook.engine import RunEvent
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.model import RunMode, RunStatus, StepRecord, StepStatus

RUNS_TOTAL = "itsmd_runbook_runs_total"
"""Incremented by the engine when a run ends; exposed (and pre-initialised) here."""
STEP_DURATION = "itsmd_runbook_step_duration_seconds"
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
"""Steps run from milliseconds (an exec of a check) to an hour (a wait_until, an approval)."""
RUN_OUTCOMES = tuple(s.value for s in RunStatus if s.terminal)
"""The engine counts a run when it ends (held included: a held run that is then cancelled counts twice)."""
COUNTED_MODES = (RunMode.LIVE.value, RunMode.DRILL.value)
UNKNOWN_ACTION = "unknown"

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    RUNS_TOTAL: ("Runbook runs that ended, by final status.", ("runbook", "mode", "outcome")),
    CHANGES_TOTAL: ("Changes closed, by type and outcome.", ("service", "change_type", "outcome")),
    CAUSING_INCIDENTS: ("Incidents linked to a recent change on their service as its suspected cause.", ("service",)),
}

ActionOf = Callable[[str, StepRecord], str]
"""(runbook name, step record) -> action kind of that step (exec, http, ...)."""


def step_action(library: RunbookLibrary, runbook: str, step: StepRecord) -> str:
    """The action kind (exec, http, ...) of a journal record, from the plan when it says, else from the runbook."""
    kind = step.plan.get("action")
    if isinstance(kind, str) and kind in ACTIONS:
        return kind
    loaded = library.get(runbook)
    if loaded is None:
        return UNKNOWN_ACTION
    spec = loaded.spec
    if step.phase == "verify":
        # The engine numbers the run-level checks after the steps (Engine._build); match the name as well,
        # so a record of an older version of the runbook is not given another check's action.
        check = step.step_index - len(spec.steps)
        found = spec.verify[check] if 0 <= check < len(spec.verify) else None
        return found.action[0] if found is not None and found.name == step.name else UNKNOWN_ACTION
    if not 0 <= step.step_index < len(spec.steps):
        return UNKNOWN_ACTION
    fields = spec.steps[step.step_index]
    choice = {"do": fields, "verify": fields.verify, "rollback": fields.rollback}[step.phase]
    return choice.action[0] if choice is not None else UNKNOWN_ACTION


class LabelledHistogram:
    """A histogram with one label whose bucket counts live in a CounterStore (so they survive restarts)."""

    def __init__(self, counters: CounterStore, name: str, label: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.label = label
        self.buckets = tuple(sorted(buckets))
        self._counters = counters
        self._les = [repr(float(b)) for b in self.buckets] + ["+Inf"]

    def ensure(self, value: str) -> None:
        for le in self._les:
            self._counters.ensure(f"{self.name}_bucket", self._bucket_key(value, le))
        self._counters.ensure(f"{self.name}_sum", ((self.label, value),))
        self._counters.ensure(f"{self.name}_count", ((self.label, value),))

    def observe(self, value: str, seconds: float) -> None:
        le = self._les[bisect.bisect_left(self.buckets, seconds)]
        self._counters.inc(f"{self.name}_bucket", self._bucket_key(value, le))
        self._counters.inc(f"{self.name}_sum", ((self.label, value),), seconds)
        self._counters.inc(f"{self.name}_count", ((self.label, value),))

    def family(self, doc: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, doc, labels=[self.label])
        for value in sorted(self._counters.label_values(f"{self.name}_count", self.label)):
            running = 0.0
            buckets = []
            for le in self._les:
                running += self._counters.get(f"{self.name}_bucket", self._bucket_key(value, le))
                buckets.append((le, running))
            family.add_metric([value], buckets, self._counters.get(f"{self.name}_sum", ((self.label, value),)))
        return family

    def _bucket_key(self, value: str, le: str) -> LabelPairs:
        return tuple(sorted(((self.label, value), ("le", le))))


class RunbookMetrics(Collector):
    def __init__(
        self,
        counters: CounterStore,
        *,
        actions: Iterable[str],
        action_of: ActionOf,
        breakers_open: Callable[[], dict[str, bool]],
        runbooks: Callable[[], list[str]],
    ) -> None:
        self._counters = counters
        self._action_of = action_of
        self._breakers_open = breakers_open
        self._runbooks = runbooks
        self._step_duration = LabelledHistogram(counters, STEP_DURATION, "action", STEP_BUCKETS)
        for action in [*actions, UNKNOWN_ACTION]:
            self._step_duration.ensure(action)
        self._timed: set[tuple[int, int]] = set()
        self.ensure_runbooks()

    def ensure_runbooks(self) -> None:
        """Series at 0 for every loaded runbook (call again after a reload)."""
        for runbook in self._runbooks():
            for mode in COUNTED_MODES:
                for outcome in RUN_OUTCOMES:
                    self._counters.ensure(RUNS_TOTAL, (("mode", mode), ("outcome", outcome), ("runbook", runbook)))

    def on_run_event(self, event: RunEvent) -> None:
        run = event.run
        if event.kind == "step":
            for step in reversed(run.steps):
                if self._observe(run.id, run.runbook, step):
                    break
        elif event.kind == "status" and run.status.terminal:
            self._timed = {key for key in self._timed if key[0] != run.id}

    def _observe(self, run_id: int, runbook: str, step: StepRecord) -> bool:
        if step.ended_at is None or step.status not in (StepStatus.SUCCEEDED, StepStatus.FAILED):
            return False
        key = (run_id, step.index)
        if key in self._timed:
            return False
        self._timed.add(key)
        self._step_duration.observe(self._action_of(runbook, step), max(0.0, step.ended_at - step.started_at))
        return True

    def collect(self) -> Iterable[Metric]:
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(label_names))
            for labels, value in sorted(self._counters.series(name)):
                values = dict(labels)
                family.add_metric([values.get(n, "") for n in label_names], value)
            yield family
        yield self._step_duration.family("Duration of runbook step executions, by action.")
        breaker = GaugeMetricFamily(
            "itsmd_runbook_breaker_open", "1 while the runbook's circuit breaker is open.", labels=["runbook"]
        )
        open_now = self._breakers_open()
        for runbook in sorted(set(self._runbooks()) | set(open_now)):
            breaker.add_metric([runbook], 1 if open_now.get(runbook) else 0)
        yield breaker
