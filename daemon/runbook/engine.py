"""The runbook engine: the one object that owns runs and their state changes.

A run is admitted synchronously by `start()` (params checked against their patterns, every template
rendered once, the run recorded with `writer.changed()`), then driven by a registered task: run-level
approval, the lock, then the steps. Every step is journaled as running and committed before its side effect
starts, and journaled again with its outcome; so after a crash the journal tells which step was in flight,
and `recover()` resumes, rolls back or holds the run by the runbook's policy. No run stays `running`.

The engine composes the parts, each in its own module: `run_state` (the runs and their journal),
`approvals` (the approval desk), `build` (rendering and plans), `params`, `admission` (run-level approval,
the lock), `runner` (the steps, rollback, cleanup) and `recovery` (start-up after a crash).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from daemon.audit import AuditLog
from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import NotFound, Unavailable
from daemon.metrics.counters import CounterStore
from daemon.runbook.actions.base import Decision
from daemon.runbook.approvals import Approvals
from daemon.runbook.build import BuiltRun, build_run, missing, plan_of
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.digest import new_key
from daemon.runbook.errors import InvalidRunTransition, RunRefused, UnknownRunbook
from daemon.runbook.guards import Breaker, LockId, Locks
from daemon.runbook.library import LoadedRunbook, RunbookLibrary
from daemon.runbook.model import (
    Run,
    RunEvent,
    RunMode,
    RunStatus,
    StepRecord,
    StepStatus,
)
from daemon.runbook.params import resolve_params
from daemon.runbook.recovery import Recovery
from daemon.runbook.redact import Redactor
from daemon.runbook.run_state import RUNS_TOTAL, RunState
from daemon.runbook.runner import StepRunner
from daemon.storage.runs import RunsSnapshot
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

if TYPE_CHECKING:
    from integrations.alertmanager.client import AlertmanagerClient
    from integrations.prometheus.client import PrometheusClient

__all__ = [
    "RUNS_TOTAL",
    "Engine",
    "Escalate",
    "InvalidRunTransition",
    "Run",
    "RunEvent",
    "RunMode",
    "RunRefused",
    "RunStatus",
    "StepRecord",
    "UnknownRunbook",
    "resolve_params",
]

Escalate = Callable[[int, str], None]
"""(incident id, text): note an escalation on the incident (the daemon wires it to Correlator.add_note)."""
_BY_NAME_TRIGGERS = frozenset({"manual", "api", "drill"})


class Engine:
    def __init__(
        self,
        *,
        writer: GroupCommitWriter,
        library: RunbookLibrary,
        clock: Clock,
        tasks: TaskRegistry,
        http: aiohttp.ClientSession,
        counters: CounterStore,
        config: RunbooksConfig | None = None,
        prometheus: PrometheusClient | None = None,
        alertmanager: AlertmanagerClient | None = None,
        escalate: Escalate | None = None,
        secrets: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        digest_key: bytes | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.library = library
        self._clock = clock
        self._config = config or RunbooksConfig()
        self._prometheus = prometheus
        self._alertmanager = alertmanager
        self._escalate = escalate
        secret_values = dict(secrets or {})
        self._redactor = Redactor(secret_values.values())
        sleep = sleep or asyncio.sleep
        self._next_id = 1
        self._breaker = Breaker()
        self._closed = False
        self._state = RunState(writer=writer, clock=clock, counters=counters, config=self._config, locks=Locks())
        self._approvals = Approvals(state=self._state, library=library, clock=clock, sleep=sleep, audit=audit)
        self._runner = StepRunner(
            state=self._state,
            approvals=self._approvals,
            clock=clock,
            tasks=tasks,
            http=http,
            config=self._config,
            prometheus=prometheus,
            alertmanager=alertmanager,
            secrets=secret_values,
            redactor=self._redactor,
            sleep=sleep,
            digest_key=digest_key or new_key(),
        )
        self._recovery = Recovery(
            state=self._state,
            library=library,
            clock=clock,
            approvals=self._approvals,
            runner=self._runner,
            build=self._build,
        )

    # ---- start-up -------------------------------------------------------------------------------------

    def restore(self, snapshot: RunsSnapshot) -> None:
        """Take what load_runs() read; call before recover() and before the writer starts."""
        self._next_id = max(self._next_id, snapshot.next_id)
        for run in snapshot.runs:
            self._state.runs[run.id] = run
            # Only runs past admission hold their lock; pending ones queue for it again in recover().
            admitted = run.status in (RunStatus.RUNNING, RunStatus.ROLLING_BACK, RunStatus.HELD) or (
                run.status is RunStatus.WAITING_APPROVAL and any(rec.phase != "rollback" for rec in run.steps)
            )
            if run.lock is not None and admitted:
                self._state.locks.try_take(run.lock, run.id)
            if run.active:
                self._recovery.pending.append(run)
        for runbook, key, at in snapshot.breaker_hits:
            self._breaker.record(runbook, key, at)

    def breaker_lookback(self) -> float:
        """How far back load_runs() must read to rebuild the breakers of the loaded runbooks."""
        windows = [rb.spec.limits.window for rb in self.library.runbooks.values() if rb.spec.limits is not None]
        return max(windows, default=0.0)

    async def recover(self) -> None:
        """Runs the journal shows active: continue them where that is safe, otherwise roll back or hold."""
        await self._recovery.recover()

    # ---- public API -----------------------------------------------------------------------------------

    def start(
        self,
        runbook: str,
        params: Mapping[str, str],
        *,
        mode: RunMode,
        trigger: str,
        requested_by: str,
        incident_id: int | None = None,
        service: str | None = None,
        emergency: bool = False,
    ) -> Run:
        """Admit a run and schedule it. Params are looked up by param name, and on triggered runs also by
        the param's label (so an alert's labels can be passed as they are)."""
        if self._closed:
            raise Unavailable("shutting_down", "the daemon is shutting down; no new runs")
        loaded = self._lookup(runbook)
        now = self._clock.now()
        resolved = resolve_params(loaded.spec, params, by_label=trigger not in _BY_NAME_TRIGGERS)
        run = Run(
            id=self._next_id,
            runbook=loaded.spec.name,
            version=loaded.version,
            mode=mode,
            status=RunStatus.PENDING,
            params=resolved,
            trigger=trigger,
            requested_by=requested_by,
            incident_id=incident_id,
            service=service,
            emergency=emergency,
            created_at=now,
        )
        built = self._build(loaded, resolved, run)
        self._next_id += 1
        run.lock_key = built.lock_key
        run.lock_scope = built.lock_scope
        run.breaker_key = built.breaker_key
        self._state.runs[run.id] = run
        self._state.mark_run(run)
        self._state.emit(run, "created")
        if mode is RunMode.DRY_RUN:
            self._record_plan(run, built)
            return run
        limits = loaded.spec.limits
        if mode is RunMode.LIVE and limits is not None and built.breaker_key is not None:
            count = self._breaker.count(run.runbook, built.breaker_key, now, limits.window)
            if count >= limits.max_runs:
                reason = (
                    f"circuit breaker open: {count} runs of {run.runbook} for key {built.breaker_key!r} within "
                    f"{format_duration(limits.window)} (limit {limits.max_runs}); escalating to a human"
                )
                self._state.finish(run, RunStatus.SKIPPED, reason)
                if incident_id is not None and self._escalate is not None:
                    self._escalate(incident_id, f"runbook {run.runbook} not run: {reason}")
                return run
            self._breaker.record(run.runbook, built.breaker_key, now)
        self._runner.schedule(run, built, resume=False)
        return run

    def plan(self, runbook: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Dry run: every step rendered (argv, URLs, queries, lock key, approvals); nothing executed."""
        loaded = self._lookup(runbook)
        resolved = resolve_params(loaded.spec, params, by_label=False)
        probe = Run(
            0,
            loaded.spec.name,
            loaded.version,
            RunMode.DRY_RUN,
            RunStatus.PENDING,
            resolved,
            "manual",
            "",
            None,
            None,
            False,
            self._clock.now(),
        )
        plan = plan_of(loaded, self._build(loaded, resolved, probe, dry=True), resolved, self._redactor)
        # A plan is for reading before anything runs: show what a live run would be refused for, not refuse.
        unavailable = missing(loaded.spec, self._have())
        if unavailable:
            plan["unavailable"] = unavailable
        return plan

    def get(self, run_id: int) -> Run | None:
        return self._state.runs.get(run_id)

    def runs(self) -> list[Run]:
        return sorted(self._state.runs.values(), key=lambda r: r.id)

    def approve(
        self,
        run_id: int,
        who: str,
        reason: str,
        *,
        on_behalf_of: str | None = None,
        identities: frozenset[str] = frozenset(),
    ) -> Run:
        """`who` is the authenticated principal; `identities` what else it answers to in `approval.who`."""
        return self._decide(run_id, Decision(True, who, reason, on_behalf_of, identities))

    def reject(
        self,
        run_id: int,
        who: str,
        reason: str,
        *,
        on_behalf_of: str | None = None,
        identities: frozenset[str] = frozenset(),
    ) -> Run:
        return self._decide(run_id, Decision(False, who, reason, on_behalf_of, identities))

    def _decide(self, run_id: int, decision: Decision) -> Run:
        run = self._known(run_id)
        self._approvals.decide(run, decision)
        return run

    def cancel(self, run_id: int, who: str, reason: str, *, on_behalf_of: str | None = None) -> Run:
        """Pending or waiting runs end `cancelled`; a running one is aborted (its current step is stopped,
        completed steps are not rolled back); a held one is released."""
        run = self._known(run_id)
        by = f"{who} (on behalf of {on_behalf_of})" if on_behalf_of else who
        why = f"cancelled by {by}" + (f": {reason}" if reason else "")
        if run.status is RunStatus.HELD:
            self._state.finish(run, RunStatus.CANCELLED, f"{run.reason}; released ({why})")
            return run
        if run.status.terminal:
            raise InvalidRunTransition(f"run {run_id} is {run.status.value}: it can no longer be cancelled")
        task = self._runner.task_of.get(run_id)
        mid_run = run.status in (RunStatus.RUNNING, RunStatus.ROLLING_BACK) or (
            run.status is RunStatus.WAITING_APPROVAL and not self._approvals.is_run_level(run_id)
        )
        if mid_run:
            self._runner.aborts[run_id] = why
        else:
            self._state.finish(run, RunStatus.CANCELLED, why)
        if task is not None and not task.done():
            task.cancel()
        return run

    def cancel_for_incident(self, incident_id: int, reason: str) -> list[Run]:
        """The incident resolved: cancel its runs that have not started their steps yet."""
        out = []
        for run in list(self._state.runs.values()):
            if run.incident_id != incident_id:
                continue
            waiting_start = run.status in (RunStatus.PENDING, RunStatus.WAITING_LOCK) or (
                run.status is RunStatus.WAITING_APPROVAL and self._approvals.is_run_level(run.id)
            )
            if waiting_start:
                out.append(self.cancel(run.id, "itsmd", reason))
        return out

    def subscribe(self, listener: Callable[[RunEvent], None]) -> None:
        self._state.subscribe(listener)

    def breakers_open(self) -> dict[str, bool]:
        """Per runbook with limits: is its circuit breaker open for any key now (itsmd_runbook_breaker_open)."""
        now = self._clock.now()
        out = {}
        for name, loaded in self.library.runbooks.items():
            limits = loaded.spec.limits
            if limits is not None:
                out[name] = bool(self._breaker.open_keys(name, now, limits.window, limits.max_runs))
        return out

    def locks(self) -> dict[LockId, int]:
        """Lock keys held now, with the run holding each."""
        return self._state.locks.held()

    async def close(self, deadline: float) -> None:
        """Stop accepting, let running runs finish for up to `deadline` seconds, then cancel them: their
        journal says `running` with the step interrupted, and the next start's recover() handles them."""
        self._closed = True
        tasks = [t for t in self._runner.task_of.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._state.flush()

    # ---- building -------------------------------------------------------------------------------------

    def _lookup(self, runbook: str) -> LoadedRunbook:
        loaded = self.library.get(runbook)
        if loaded is None:
            raise UnknownRunbook("unknown_runbook", f"no runbook named {runbook!r}")
        return loaded

    def _known(self, run_id: int) -> Run:
        run = self._state.runs.get(run_id)
        if run is None:
            raise NotFound("not_found", f"no run {run_id}")
        return run

    def _build(self, loaded: LoadedRunbook, params: Mapping[str, str], run: Run, *, dry: bool = False) -> BuiltRun:
        return build_run(loaded, params, run, have=self._have(), dry=dry)

    def _have(self) -> dict[str, bool]:
        return {"prometheus": self._prometheus is not None, "alertmanager": self._alertmanager is not None}

    def _record_plan(self, run: Run, built: BuiltRun) -> None:
        plan = plan_of(built.runbook, built, run.params, self._redactor)
        now = self._clock.now()
        for item in (*plan["steps"], *plan["verify"]):
            rec = StepRecord(
                len(run.steps),
                item["name"],
                item["phase"],
                StepStatus.PLANNED,
                0,
                now,
                now,
                "planned (dry run: nothing executed)",
                "",
                "",
                item,
            )
            run.steps.append(rec)
            self._state.mark_step(run, rec)
        self._state.finish(run, RunStatus.SUCCEEDED, "dry run: every step rendered, nothing executed")
