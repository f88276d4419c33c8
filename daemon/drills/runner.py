"""The drill runner: the one module that owns drill runs and their state changes.

A drill run starts (on its schedule or by hand) only when no other drill of the same service is running and the
service has no open P1/P2 incident; otherwise it is recorded `skipped` with the reason (a manual start while
another drill of the service runs is refused instead, so the caller hears why). It starts the drill's runbook in
drill mode and follows the run through the engine's events. Recovery time is measured from the run's start
(after any approval) until recovery is observed: with `recovery.verify` the run's end (its verify steps passed),
with `recovery.promql` the first poll after the run's steps that returns a non-empty result, polled every
`interval` up to `max(2 x RTO, RTO + interval)` after the start. The drill passes when the run succeeded, the
recovery took no longer than the RTO and, when `rpo_query` measured it, the data loss is within the RPO.

Drill runs are written through the group-commit writer (table drill_runs). A shutdown records the drills still
running as `interrupted` at that instant (close(), before the writer's last commit); one found `running` at start
was cut short by a crash and is recorded `interrupted` then, its reason saying the end time is when that was
found (the engine's recover() handles the runbook run either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from daemon.clock import Clock
from daemon.drills.model import ENDED_OUTCOMES, DrillOutcome, DrillRun
from daemon.drills.spec import Drill
from daemon.durations import format_duration
from daemon.errors import Conflict, NotFound, RequestError, StoreUnavailable
from daemon.metrics.counters import CounterStore
from daemon.model import Incident
from daemon.runbook.actions.base import ActionUnavailable
from daemon.runbook.engine import Engine, RunRefused
from daemon.runbook.model import Run, RunEvent, RunMode, RunStatus
from daemon.storage.database import Batch
from daemon.storage.drills import UPSERT, DrillState, drill_row
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry
from integrations.prometheus.client import PrometheusClient, PrometheusError

log = logging.getLogger(__name__)

DRILLS_TOTAL = "itsmd_drills_total"
"""Counter in the CounterStore, labels (outcome, service): incremented when a drill run ends."""
BLOCKING_PRIORITIES = frozenset({"P1", "P2"})


class DrillBusy(Conflict):
    """A drill of the same service is running."""

    def __init__(self, message: str) -> None:
        super().__init__("drill_running", message)


def _labels(service: str, outcome: str) -> tuple[tuple[str, str], ...]:
    return (("outcome", outcome), ("service", service))


class DrillRunner:
    def __init__(
        self,
        *,
        writer: GroupCommitWriter,
        engine: Engine,
        clock: Clock,
        tasks: TaskRegistry,
        counters: CounterStore,
        incidents: Callable[[], Iterable[Incident]],
        prometheus: PrometheusClient | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._writer = writer
        self._engine = engine
        self._clock = clock
        self._tasks = tasks
        self._counters = counters
        self._incidents = incidents
        self._prometheus = prometheus
        self._sleep = sleep or asyncio.sleep
        self.drills: dict[str, Drill] = {}
        self.last: dict[str, DrillRun] = {}
        """The newest run of each drill, running or ended."""
        self.last_success: dict[str, float] = {}
        self.last_recovery: dict[str, float] = {}
        self._active: dict[str, DrillRun] = {}
        """Running drill run by service."""
        self._waiting: dict[int, asyncio.Future[Run]] = {}
        """Runbook run id -> resolved with the run when it ends."""
        self._ended: dict[int, asyncio.Event] = {}
        self._dirty: dict[int, DrillRun] = {}
        self._next_id = 1
        self.end_listeners: list[Callable[[DrillRun], None]] = []
        """Hear each drill run that ended, synchronously inside that change (the webhook outbox)."""
        writer.add_collector(self._collect)
        engine.subscribe(self.on_run_event)

    # ---- start-up and configuration --------------------------------------------------------------------

    def restore(self, state: DrillState) -> None:
        """Take what load_drill_state() read; runs stored as running were cut short by a crash (a clean stop
        records them in close()): interrupted, not failed, since the recovery was never measured."""
        self._next_id = max(self._next_id, state.next_id)
        self.last.update(state.last)
        self.last_success.update(state.last_success)
        self.last_recovery.update(state.last_recovery)
        for run in state.interrupted:
            self._end(
                run,
                DrillOutcome.INTERRUPTED,
                "interrupted: the daemon stopped while the drill ran (found at the next start; ended_at is then)",
            )

    def close(self) -> None:
        """At shutdown, after the engine stopped and before the writer's last commit: drills still running
        will not be measured, so they end `interrupted` now, when it happened."""
        for d in list(self._active.values()):
            self._end(d, DrillOutcome.INTERRUPTED, "interrupted: the daemon shut down while the drill ran")

    def set_drills(self, drills: Sequence[Drill]) -> None:
        """The drills in use (at start and after each reload); their series exist at 0 from now on."""
        self.drills = {d.name: d for d in drills}
        for drill in drills:
            for outcome in ENDED_OUTCOMES:
                self._counters.ensure(DRILLS_TOTAL, _labels(drill.service, outcome))

    def scheduled_services(self) -> set[str]:
        """Services with at least one enabled (scheduled) drill."""
        return {d.service for d in self.drills.values() if d.enabled}

    def rto_by_service(self) -> dict[str, float]:
        """The strictest RTO among the drills of each service."""
        out: dict[str, float] = {}
        for d in self.drills.values():
            out[d.service] = min(out.get(d.service, d.rto), d.rto)
        return out

    def running(self, service: str) -> DrillRun | None:
        return self._active.get(service)

    # ---- starting ---------------------------------------------------------------------------------------

    def run_scheduled(self, name: str) -> None:
        """The scheduler's job for a drill; never raises for a busy service (that is recorded as skipped)."""
        try:
            self.start(name, trigger="schedule", requested_by="scheduler")
        except RequestError as exc:
            log.warning("scheduled drill %s not started: %s", name, exc)

    def start(self, name: str, *, trigger: str, requested_by: str) -> DrillRun:
        """Start drill `name` now. 404 for an unknown drill; DrillBusy (409) for a manual start while a drill
        of the service runs. Returns the drill run, which may already have ended (skipped, error)."""
        drill = self.drills.get(name)
        if drill is None:
            raise NotFound("not_found", f"no drill named {name!r}")
        busy = self._active.get(drill.service)
        now = self._clock.now()
        d = DrillRun(
            id=self._next_id,
            drill=name,
            service=drill.service,
            trigger=trigger,
            requested_by=requested_by,
            outcome=DrillOutcome.RUNNING,
            reason="",
            started_at=now,
            rto_seconds=drill.rto,
            rpo_seconds=drill.rpo,
        )
        if busy is not None:
            why = f"drill {busy.drill} (drill run {busy.id}) is running for service {drill.service}"
            if trigger != "schedule":
                raise DrillBusy(why + "; one drill per service at a time")
            self._next_id += 1
            self._end(d, DrillOutcome.SKIPPED, why)
            return d
        self._next_id += 1
        blocking = self._blocking_incident(drill.service)
        if blocking is not None:
            self._end(
                d,
                DrillOutcome.SKIPPED,
                f"service {drill.service} has open {blocking.priority} incident {blocking.id}: no drills during it",
            )
            return d
        if (drill.recovery.promql is not None or drill.rpo_query is not None) and self._prometheus is None:
            self._end(d, DrillOutcome.ERROR, "recovery.promql and rpo_query need a prometheus: section in the config")
            return d
        try:
            run = self._engine.start(
                drill.runbook,
                drill.params,
                mode=RunMode.DRILL,
                trigger="drill",
                requested_by=f"drill:{name}",
                service=drill.service,
            )
        except (RunRefused, ActionUnavailable) as exc:
            self._end(d, DrillOutcome.ERROR, f"runbook {drill.runbook} not started: {exc}")
            return d
        d.run_id = run.id
        self._active[drill.service] = d
        self._ended[d.id] = asyncio.Event()
        self._remember(d)
        done: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        if run.status.terminal:
            done.set_result(run)
        else:
            self._waiting[run.id] = done
        self._tasks.start(f"drill-{d.id}", self._follow(d, drill, done))
        log.info("drill %s started (drill run %d, runbook run %d)", name, d.id, run.id)
        return d

    async def wait(self, d: DrillRun) -> DrillRun:
        """Until the drill run has ended (tests and callers that want the result)."""
        event = self._ended.get(d.id)
        if event is not None:
            await event.wait()
        return d

    async def durable(self, within: float) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._writer.durable(self._writer.changed(), within)

    def _blocking_incident(self, service: str) -> Incident | None:
        for incident in self._incidents():
            if incident.service == service and incident.status.active and incident.priority in BLOCKING_PRIORITIES:
                return incident
        return None

    # ---- following and measuring ------------------------------------------------------------------------

    def on_run_event(self, event: RunEvent) -> None:
        run = event.run
        if run.status.terminal:
            done = self._waiting.pop(run.id, None)
            if done is not None and not done.done():
                done.set_result(run)

    async def _follow(self, d: DrillRun, drill: Drill, done: asyncio.Future[Run]) -> None:
        try:
            run = await done
            await self._measure(d, drill, run)
        except asyncio.CancelledError:
            raise  # shutdown: stays running in the store; the next start records it interrupted
        except Exception as exc:
            log.exception("drill run %d of %s failed inside the runner", d.id, d.drill)
            self._end(d, DrillOutcome.ERROR, f"runner error: {exc!r}")

    async def _measure(self, d: DrillRun, drill: Drill, run: Run) -> None:
        if run.status is not RunStatus.SUCCEEDED:
            self._end(d, DrillOutcome.FAILED, f"runbook run {run.id} ended {run.status.value}: {run.reason}")
            return
        started = run.started_at if run.started_at is not None else run.created_at
        prometheus = self._prometheus
        if drill.recovery.promql is None or prometheus is None:  # start() refuses promql drills without it
            recovered_at: float | None = run.ended_at if run.ended_at is not None else self._clock.now()
            how = "the run's verify steps passed"
        else:
            recovered_at, how = await self._poll(prometheus, drill, drill.recovery.promql, started)
        if recovered_at is None:
            self._end(d, DrillOutcome.FAILED, f"never recovered: {how}")
            return
        recovery = max(0.0, recovered_at - started)
        d.recovery_seconds = recovery
        reasons = []
        if recovery > drill.rto:
            reasons.append(
                f"recovery took {recovery:.1f}s, slower than the RTO of {format_duration(drill.rto)} ({how})"
            )
        if drill.rpo_query is not None and self._prometheus is not None:
            loss, error = await self._data_loss(self._prometheus, drill.rpo_query)
            d.data_loss_seconds = loss
            if error:
                self._end(d, DrillOutcome.ERROR, error)
                return
            if loss is not None and drill.rpo is not None and loss > drill.rpo:
                reasons.append(f"data loss {loss:.1f}s exceeds the RPO of {format_duration(drill.rpo)}")
        if reasons:
            self._end(d, DrillOutcome.FAILED, "; ".join(reasons))
        else:
            self._end(d, DrillOutcome.PASSED, f"recovered in {recovery:.1f}s within the RTO ({how})")

    async def _poll(
        self, prometheus: PrometheusClient, drill: Drill, query: str, started: float
    ) -> tuple[float | None, str]:
        """(clock time recovery was first observed, how) or (None, why not)."""
        interval = drill.recovery.interval
        bound = started + max(2 * drill.rto, drill.rto + interval)
        last_error = ""
        while True:
            asked = self._clock.now()
            try:
                result = await prometheus.query(query)
            except PrometheusError as exc:
                last_error = f"; last query error: {exc}"
            else:
                if result.samples:
                    return asked, f"{query} returned a result"
            if asked >= bound:
                waited = format_duration(bound - started)
                return None, f"{query} returned nothing within {waited} of the run's start{last_error}"
            await self._sleep(min(interval, bound - asked))

    async def _data_loss(self, prometheus: PrometheusClient, query: str) -> tuple[float | None, str]:
        try:
            result = await prometheus.query(query)
        except PrometheusError as exc:
            return None, f"rpo_query failed: {exc}"
        if not result.samples:
            return None, f"rpo_query {query} returned nothing: data loss not measured"
        return max(s.value for s in result.samples), ""

    # ---- state ------------------------------------------------------------------------------------------

    def _end(self, d: DrillRun, outcome: DrillOutcome, reason: str) -> None:
        if d.outcome.ended:
            return  # already ended (interrupted by close() while its measuring was still unwinding)
        d.outcome = outcome
        d.reason = reason
        d.ended_at = self._clock.now()
        if self._active.get(d.service) is d:
            del self._active[d.service]
        if outcome is DrillOutcome.PASSED:
            self.last_success[d.service] = d.ended_at
        if d.recovery_seconds is not None:
            self.last_recovery[d.service] = d.recovery_seconds
        self._counters.inc(DRILLS_TOTAL, _labels(d.service, outcome.value))
        self._remember(d)
        for listener in self.end_listeners:
            try:
                listener(d)
            except Exception:
                log.exception("drill end listener failed on drill run %d", d.id)
        event = self._ended.pop(d.id, None)
        if event is not None:
            event.set()
        log.info("drill %s (drill run %d) %s: %s", d.drill, d.id, outcome.value, reason)

    def _remember(self, d: DrillRun) -> None:
        current = self.last.get(d.drill)
        if current is None or current.id <= d.id:
            self.last[d.drill] = d
        self._dirty[d.id] = d
        self._writer.changed()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for key, d in self._dirty.items():
            batch.upsert(UPSERT, key, drill_row(d))
        self._dirty.clear()
