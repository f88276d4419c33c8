"""The runbook engine: the one module that owns runs and their state changes.

A run is admitted synchronously by `start()` (params checked against their patterns, every template
rendered once, the run recorded with `writer.changed()`), then driven by a registered task: run-level
approval, the lock, then the steps. Every step is journaled as running and committed before its side effect
starts, and journaled again with its outcome; so after a crash the journal tells which step was in flight,
and `recover()` resumes, rolls back or holds the run by the runbook's policy. No run stays `running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from daemon.audit import SYSTEM, AuditLog
from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import Conflict, Forbidden, NotFound, StoreUnavailable, Unavailable, Unprocessable
from daemon.metrics.counters import CounterStore
from daemon.runbook.actions.approval import ApprovalAction
from daemon.runbook.actions.base import Action, ActionUnavailable, Decision, Outcome, StepContext
from daemon.runbook.actions.http import HttpAction
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.digest import new_key, output_digest
from daemon.runbook.guards import Breaker, LockId, Locks
from daemon.runbook.journal import UPSERT_RUN, UPSERT_STEP, RunsSnapshot, run_row, step_row
from daemon.runbook.library import LoadedRunbook, RunbookLibrary
from daemon.runbook.model import (
    Approval,
    Run,
    RunEvent,
    RunMode,
    RunStatus,
    StepPhase,
    StepRecord,
    StepStatus,
)
from daemon.runbook.redact import Redactor, cap
from daemon.runbook.render import RenderError, TemplateRenderer
from daemon.runbook.spec import ActionChoice, OnFailure, OnInterrupt, RunbookFields, StepFields
from daemon.storage.database import Batch
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

if TYPE_CHECKING:
    from integrations.alertmanager.client import AlertmanagerClient
    from integrations.prometheus.client import PrometheusClient

__all__ = [
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
]

log = logging.getLogger(__name__)

Escalate = Callable[[int, str], None]
"""(incident id, text): note an escalation on the incident (the daemon wires it to Correlator.add_note)."""
RUNS_TOTAL = "itsmd_runbook_runs_total"
"""Counter in the CounterStore, labels (mode, outcome, runbook): incremented when a run ends."""
_BY_NAME_TRIGGERS = frozenset({"manual", "api", "drill"})
_RECLAIM_TIMEOUT = 10.0
"""Per action: how long finding and undoing what a lost attempt left behind may take (recovery waits for it)."""
_VALUE_ECHO = 80


class RunRefused(Unprocessable):
    """A run that cannot start: a param that does not match its pattern, a missing integration, a template
    that does not render; nothing is recorded."""


class UnknownRunbook(NotFound, RunRefused):
    """A run of a runbook the library does not have: NotFound comes first, so it answers 404."""


class InvalidRunTransition(Conflict):
    """approve/reject/cancel in a state that does not allow it; the message names what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_transition", message)


@dataclass(frozen=True)
class BuiltStep:
    """One runbook step (or runbook-level verify) with its actions rendered."""

    index: int
    spec: StepFields
    phase: StepPhase
    action: Action
    verify: Action | None
    rollback: Action | None

    @property
    def timeout(self) -> float:
        if isinstance(self.action, ApprovalAction):
            # An approval's own timeout decides; the step timeout (60s by default) must not cut it short.
            return max(self.spec.timeout, self.action.timeout)
        return self.spec.timeout


@dataclass(frozen=True)
class BuiltRun:
    runbook: LoadedRunbook
    steps: tuple[BuiltStep, ...]
    lock_key: str | None
    lock_scope: str
    breaker_key: str | None
    sensitive: tuple[str, ...]
    approval_message: str
    """The runbook's approval.message, rendered once like every template."""


@dataclass
class _Gate:
    future: asyncio.Future[Decision]
    who: tuple[str, ...]
    run_level: bool
    requester_may_approve: bool = True


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
        self._writer = writer
        self._clock = clock
        self._tasks = tasks
        self._http = http
        self._counters = counters
        self._config = config or RunbooksConfig()
        self._prometheus = prometheus
        self._alertmanager = alertmanager
        self._escalate = escalate
        self._secrets = dict(secrets or {})
        self._redactor = Redactor(self._secrets.values())
        self._sleep = sleep or asyncio.sleep
        self._digest_key = digest_key or new_key()
        self._audit = audit
        self._runs: dict[int, Run] = {}
        self._next_id = 1
        self._listeners: list[Callable[[RunEvent], None]] = []
        self._dirty_runs: set[int] = set()
        self._dirty_steps: set[tuple[int, int]] = set()
        self._gates: dict[int, _Gate] = {}
        self._task_of: dict[int, asyncio.Task[Any]] = {}
        self._aborts: dict[int, str] = {}
        self._recovering: list[Run] = []
        self._locks = Locks()
        self._breaker = Breaker()
        self._closed = False
        writer.add_collector(self._collect)

    # ---- start-up -------------------------------------------------------------------------------------

    def restore(self, snapshot: RunsSnapshot) -> None:
        """Take what load_runs() read; call before recover() and before the writer starts."""
        self._next_id = max(self._next_id, snapshot.next_id)
        for run in snapshot.runs:
            self._runs[run.id] = run
            # Only runs past admission hold their lock; pending ones queue for it again in recover().
            admitted = run.status in (RunStatus.RUNNING, RunStatus.ROLLING_BACK, RunStatus.HELD) or (
                run.status is RunStatus.WAITING_APPROVAL and any(rec.phase != "rollback" for rec in run.steps)
            )
            if run.lock is not None and admitted:
                self._locks.try_take(run.lock, run.id)
            if run.active:
                self._recovering.append(run)
        for runbook, key, at in snapshot.breaker_hits:
            self._breaker.record(runbook, key, at)

    def breaker_lookback(self) -> float:
        """How far back load_runs() must read to rebuild the breakers of the loaded runbooks."""
        windows = [rb.spec.limits.window for rb in self.library.runbooks.values() if rb.spec.limits is not None]
        return max(windows, default=0.0)

    async def recover(self) -> None:
        """Runs the journal shows active: continue them where that is safe, otherwise roll back or hold."""
        runs, self._recovering = self._recovering, []
        for run in runs:
            # Before anything is re-run: a resumed step makes a new one of what it left behind.
            await self._reclaim_in_flight(run)
            self._recover_one(run)
        seq = self._writer.changed()
        with contextlib.suppress(StoreUnavailable):
            await self._writer.durable(seq, self._config.durable_timeout)

    def _recover_one(self, run: Run) -> None:
        loaded = self.library.get(run.runbook)
        if loaded is None or loaded.version != run.version:
            why = "is gone" if loaded is None else "changed"
            self._hold(run, f"interrupted by a restart, and runbook {run.runbook} {why} since the run started")
            return
        try:
            built = self._build(loaded, run.params, run)
        except (RunRefused, ActionUnavailable) as exc:
            self._hold(run, f"interrupted by a restart and cannot be rebuilt: {exc}")
            return
        do_started = any(rec.phase != "rollback" for rec in run.steps)
        if run.status in (RunStatus.PENDING, RunStatus.WAITING_LOCK) or (
            run.status is RunStatus.WAITING_APPROVAL and not do_started
        ):
            asked = run.approval
            if asked is not None and asked.decision is None and self._clock.now() >= asked.expires_at:
                # The approval's time ran out while the daemon was down: it counts from the request.
                self._approval_decided(run, None)
                self._finish(run, RunStatus.REJECTED, f"no approval within {format_duration(asked.timeout)}")
                return
            self._schedule(run, built, resume=False)
            return
        spec = loaded.spec
        last = run.steps[-1] if run.steps else None
        in_flight = last is not None and last.status in (StepStatus.RUNNING, StepStatus.INTERRUPTED)
        if last is not None and in_flight:
            last.status = StepStatus.INTERRUPTED
            last.ended_at = last.ended_at or self._clock.now()
            last.summary = last.summary or "interrupted by a restart"
            self._mark_step(run, last)
        if run.status is RunStatus.ROLLING_BACK or (last is not None and last.phase == "rollback"):
            if in_flight and last is not None:
                self._hold(run, f"interrupted by a restart during the rollback of step {last.name}")
            else:
                self._schedule(run, built, resume=True, rollback_only=True)
            return
        if not in_flight or last is None:
            self._schedule(run, built, resume=True)
            return
        step = next((b for b in built.steps if b.index == last.step_index), None)
        idempotent = step is not None and (step.spec.idempotent or isinstance(step.action, ApprovalAction))
        if idempotent:
            self._schedule(run, built, resume=True)
        elif spec.on_interrupt is OnInterrupt.ROLLBACK:
            run.reason = f"interrupted by a restart during step {last.name}, which is not idempotent"
            self._schedule(run, built, resume=True, rollback_only=True)
        else:
            self._hold(run, f"interrupted by a restart during step {last.name}, which is not idempotent")

    async def _reclaim_in_flight(self, run: Run) -> None:
        """The step in flight at the crash may have made something (a silence) whose handle never reached the
        journal; let its action find and undo it, and say so on the step."""
        last = run.steps[-1] if run.steps else None
        loaded = self.library.get(run.runbook)
        if last is None or last.status not in (StepStatus.RUNNING, StepStatus.INTERRUPTED) or last.data:
            return
        if loaded is None or loaded.version != run.version:
            return
        try:
            built = self._build(loaded, run.params, run)
        except (RunRefused, ActionUnavailable):
            return
        step = next((b for b in built.steps if b.index == last.step_index), None)
        action = None if step is None else (step.rollback if last.phase == "rollback" else step.action)
        if step is None or action is None:
            return
        undone = await self._reclaim(run, step, action)
        if undone:
            last.summary = f"{last.summary or 'interrupted by a restart'}; {', '.join(undone)} it had made"
            self._mark_step(run, last)

    async def _reclaim(self, run: Run, step: BuiltStep, action: Action) -> list[str]:
        ctx = self._context(run, step, self._clock.now() + _RECLAIM_TIMEOUT)
        try:
            async with asyncio.timeout(_RECLAIM_TIMEOUT):
                undone = await action.reclaim(ctx)
        except Exception as exc:  # best effort: a silence still lapses at its end time
            log.warning("could not undo what step %s of run %d left behind: %r", step.spec.name, run.id, exc)
            return []
        for what in undone:
            log.info("run %d step %s: %s (its outcome was lost)", run.id, step.spec.name, what)
        return undone

    def _hold(self, run: Run, reason: str) -> None:
        self._finish(run, RunStatus.HELD, reason + "; held for a human (cancel the run to release it)")

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
        self._runs[run.id] = run
        self._mark_run(run)
        self._emit(run, "created")
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
                self._finish(run, RunStatus.SKIPPED, reason)
                if incident_id is not None and self._escalate is not None:
                    self._escalate(incident_id, f"runbook {run.runbook} not run: {reason}")
                return run
            self._breaker.record(run.runbook, built.breaker_key, now)
        self._schedule(run, built, resume=False)
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
        plan = self._plan_of(loaded, self._build(loaded, resolved, probe, dry=True), resolved)
        # A plan is for reading before anything runs: show what a live run would be refused for, not refuse.
        missing = self._missing(loaded.spec)
        if missing:
            plan["unavailable"] = missing
        return plan

    def get(self, run_id: int) -> Run | None:
        return self._runs.get(run_id)

    def runs(self) -> list[Run]:
        return sorted(self._runs.values(), key=lambda r: r.id)

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

    def cancel(self, run_id: int, who: str, reason: str, *, on_behalf_of: str | None = None) -> Run:
        """Pending or waiting runs end `cancelled`; a running one is aborted (its current step is stopped,
        completed steps are not rolled back); a held one is released."""
        run = self._known(run_id)
        by = f"{who} (on behalf of {on_behalf_of})" if on_behalf_of else who
        why = f"cancelled by {by}" + (f": {reason}" if reason else "")
        if run.status is RunStatus.HELD:
            self._finish(run, RunStatus.CANCELLED, f"{run.reason}; released ({why})")
            return run
        if run.status.terminal:
            raise InvalidRunTransition(f"run {run_id} is {run.status.value}: it can no longer be cancelled")
        task = self._task_of.get(run_id)
        mid_run = run.status in (RunStatus.RUNNING, RunStatus.ROLLING_BACK) or (
            run.status is RunStatus.WAITING_APPROVAL and not self._gate_is_run_level(run_id)
        )
        if mid_run:
            self._aborts[run_id] = why
        else:
            self._finish(run, RunStatus.CANCELLED, why)
        if task is not None and not task.done():
            task.cancel()
        return run

    def cancel_for_incident(self, incident_id: int, reason: str) -> list[Run]:
        """The incident resolved: cancel its runs that have not started their steps yet."""
        out = []
        for run in list(self._runs.values()):
            if run.incident_id != incident_id:
                continue
            waiting_start = run.status in (RunStatus.PENDING, RunStatus.WAITING_LOCK) or (
                run.status is RunStatus.WAITING_APPROVAL and self._gate_is_run_level(run.id)
            )
            if waiting_start:
                out.append(self.cancel(run.id, "itsmd", reason))
        return out

    def subscribe(self, listener: Callable[[RunEvent], None]) -> None:
        self._listeners.append(listener)

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
        return self._locks.held()

    async def close(self, deadline: float) -> None:
        """Stop accepting, let running runs finish for up to `deadline` seconds, then cancel them: their
        journal says `running` with the step interrupted, and the next start's recover() handles them."""
        self._closed = True
        tasks = [t for t in self._task_of.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        seq = self._writer.changed()
        with contextlib.suppress(StoreUnavailable):
            await self._writer.durable(seq, self._config.durable_timeout)

    # ---- building -------------------------------------------------------------------------------------

    def _lookup(self, runbook: str) -> LoadedRunbook:
        loaded = self.library.get(runbook)
        if loaded is None:
            raise UnknownRunbook("unknown_runbook", f"no runbook named {runbook!r}")
        return loaded

    def _known(self, run_id: int) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound("not_found", f"no run {run_id}")
        return run

    def _build(self, loaded: LoadedRunbook, params: Mapping[str, str], run: Run, *, dry: bool = False) -> BuiltRun:
        spec = loaded.spec
        if not dry:
            self._check_available(spec)
        variables = {
            "params": dict(params),
            "incident": {"id": run.incident_id, "service": run.service},
            "run": {
                "id": run.id,
                "runbook": run.runbook,
                "mode": run.mode.value,
                "trigger": run.trigger,
                "requested_by": run.requested_by,
                "emergency": run.emergency,
            },
        }
        render = TemplateRenderer(variables)
        try:
            steps = [self._build_step(i, s, "do", render) for i, s in enumerate(spec.steps)]
            steps += [self._build_step(len(spec.steps) + i, s, "verify", render) for i, s in enumerate(spec.verify)]
            approval_message = render(spec.approval.message)
            lock_key = render(spec.concurrency.key) if spec.concurrency is not None else None
            breaker_key = None
            if spec.limits is not None:
                breaker_key = render(spec.limits.key) if spec.limits.key is not None else (lock_key or "")
        except RenderError as exc:
            raise RunRefused("render_failed", str(exc)) from None
        sensitive = [
            v
            for b in steps
            for a in (b.action, b.verify, b.rollback)
            if isinstance(a, HttpAction)
            for v in a.sensitive_values()
        ]
        scope = spec.concurrency.scope if spec.concurrency is not None else "runbook"
        return BuiltRun(loaded, tuple(steps), lock_key, scope, breaker_key, tuple(sensitive), approval_message)

    @staticmethod
    def _build_step(index: int, spec: StepFields, phase: StepPhase, render: TemplateRenderer) -> BuiltStep:
        def build(choice: ActionChoice | None) -> Action | None:
            return choice.action[1].build(render) if choice is not None else None

        return BuiltStep(index, spec, phase, spec.action[1].build(render), build(spec.verify), build(spec.rollback))

    def _check_available(self, spec: RunbookFields) -> None:
        missing = self._missing(spec)
        if missing:
            raise RunRefused("action_unavailable", missing[0])

    def _missing(self, spec: RunbookFields) -> list[str]:
        """Why a live run of this runbook would be refused: steps whose integration is not configured."""
        have = {"prometheus": self._prometheus is not None, "alertmanager": self._alertmanager is not None}
        out: list[str] = []
        for step in (*spec.steps, *spec.verify):
            for choice in (step, step.verify, step.rollback):
                if choice is None:
                    continue
                key, action = choice.action
                out.extend(
                    f"step {step.name} uses {key}, which needs `{need}:` in the config"
                    for need in action.requires
                    if not have.get(need, False)
                )
        return out

    def _plan_of(self, loaded: LoadedRunbook, built: BuiltRun, params: Mapping[str, str]) -> dict[str, Any]:
        spec = loaded.spec
        redact = self._redactor.with_values(built.sensitive)

        def one(b: BuiltStep) -> dict[str, Any]:
            out: dict[str, Any] = {
                "name": b.spec.name,
                "phase": b.phase,
                "action": b.action.kind,
                "plan": redact.value(b.action.plan()),
                "timeout": format_duration(b.timeout),
                "retries": b.spec.retries,
                "idempotent": b.spec.idempotent,
                "needs_approval": isinstance(b.action, ApprovalAction),
            }
            if b.verify is not None:
                out["verify"] = {"action": b.verify.kind, "plan": redact.value(b.verify.plan())}
            if b.rollback is not None:
                out["rollback"] = {"action": b.rollback.kind, "plan": redact.value(b.rollback.plan())}
            return out

        return {
            "runbook": spec.name,
            "version": loaded.version,
            "params": dict(params),
            "change": {"type": spec.change.type, "risk": spec.change.risk},
            "approval": {
                "required": spec.approval.required,
                "who": list(spec.approval.who),
                "timeout": format_duration(spec.approval.timeout),
                "message": redact.text(built.approval_message),
            },
            "lock_key": built.lock_key,
            "lock_scope": built.lock_scope,
            "breaker_key": built.breaker_key,
            "on_failure": spec.on_failure.value,
            "on_interrupt": spec.on_interrupt.value,
            "steps": [one(b) for b in built.steps if b.phase == "do"],
            "verify": [one(b) for b in built.steps if b.phase == "verify"],
        }

    def _record_plan(self, run: Run, built: BuiltRun) -> None:
        plan = self._plan_of(built.runbook, built, run.params)
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
            self._mark_step(run, rec)
        self._finish(run, RunStatus.SUCCEEDED, "dry run: every step rendered, nothing executed")

    # ---- driving a run --------------------------------------------------------------------------------

    def _schedule(self, run: Run, built: BuiltRun, *, resume: bool, rollback_only: bool = False) -> None:
        name = f"runbook-run-{run.id}"

        async def drive() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._task_of[run.id] = task
            try:
                await self._drive(run, built, resume=resume, rollback_only=rollback_only)
            finally:
                self._task_of.pop(run.id, None)

        self._tasks.start(name, drive())

    async def _drive(self, run: Run, built: BuiltRun, *, resume: bool, rollback_only: bool) -> None:
        try:
            await self._durable()
            if not resume and not await self._admit(run, built):
                return
            if rollback_only:
                await self._rollback(run, built, run.reason or "rolling back")
            else:
                await self._run_steps(run, built)
        except asyncio.CancelledError:
            if run.status.terminal:
                return  # cancelled before it started: cancel() already recorded it
            abort = self._aborts.pop(run.id, None)
            self._interrupt_step(run, "aborted" if abort is not None else "interrupted by shutdown")
            if abort is not None:
                self._finish(run, RunStatus.ABORTED, f"{abort}; completed steps were not rolled back")
                await self._cleanup(run, built)  # silences and the like still end with the run
                return
            run.reason = "interrupted by shutdown; recover() decides at the next start"
            self._mark_run(run)
            raise
        except Exception as exc:
            log.exception("run %d of %s failed inside the engine", run.id, run.runbook)
            self._interrupt_step(run, f"engine error: {exc!r}")
            self._finish(run, RunStatus.FAILED, f"engine error: {exc!r}")
        finally:
            if run.status.terminal and run.status is not RunStatus.HELD and run.lock is not None:
                self._locks.release(run.lock, run.id)
            self._gates.pop(run.id, None)

    async def _admit(self, run: Run, built: BuiltRun) -> bool:
        """Run-level approval, then the lock. False when the run ended here (rejected, skipped)."""
        spec = built.runbook.spec
        if spec.approval.required or spec.change.type == "normal":
            asked = run.approval
            if asked is None:
                # Journaled with the waiting status: after a restart the timeout goes on from this moment.
                asked = run.approval = Approval(
                    self._clock.now(), built.approval_message, spec.approval.who, spec.approval.timeout
                )
                self._mark_run(run)
            if asked.decision is None:  # approved before a restart: the journaled approval stands
                remaining = asked.expires_at - self._clock.now()
                decision = None
                if remaining > 0:
                    decision = await self._await_decision(run, asked.message, asked.who, remaining, True)
                self._approval_decided(run, decision)
                if decision is None:
                    self._finish(run, RunStatus.REJECTED, f"no approval within {format_duration(asked.timeout)}")
                    return False
                if not decision.approved:
                    self._finish(run, RunStatus.REJECTED, f"rejected by {decision.decider}: {decision.reason}")
                    return False
                run.reason = f"approved by {decision.decider}: {decision.reason}"
        if run.lock is not None and spec.concurrency is not None:
            taken = await self._take_lock(run, run.lock, spec.concurrency.on_conflict, spec.concurrency.wait_timeout)
            if not taken:
                return False
        return True

    async def _take_lock(self, run: Run, lock: LockId, on_conflict: str, wait_timeout: float) -> bool:
        deadline = self._clock.now() + wait_timeout
        owner, key = lock
        shown = f"global lock {key!r}" if owner is None else f"lock {key!r}"
        while not self._locks.try_take(lock, run.id):
            holder = self._locks.holder(lock)
            if owner is None and holder is not None and (held := self._runs.get(holder)) is not None:
                holder_text = f"{holder} ({held.runbook})"
            else:
                holder_text = str(holder)
            if on_conflict == "skip":
                self._finish(run, RunStatus.SKIPPED, f"{shown} is held by run {holder_text}")
                return False
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                self._finish(
                    run,
                    RunStatus.SKIPPED,
                    f"{shown} still held by run {holder_text} after {format_duration(wait_timeout)}",
                )
                return False
            self._set_status(run, RunStatus.WAITING_LOCK, f"waiting for {shown} held by run {holder_text}")
            await self._race(self._locks.released(lock), remaining)
        return True

    async def _run_steps(self, run: Run, built: BuiltRun) -> None:
        spec = built.runbook.spec
        done = {rec.step_index for rec in run.steps if rec.phase != "rollback" and rec.status.finished}
        failures = [rec.name for rec in run.steps if rec.phase != "rollback" and rec.status is StepStatus.FAILED]
        if run.started_at is None:
            run.started_at = self._clock.now()
        self._set_status(run, RunStatus.RUNNING, "")
        for step in built.steps:
            if step.index in done:
                continue
            outcome = await self._step(run, built, step)
            if outcome.ok:
                continue
            why = f"step {step.spec.name} failed: {outcome.summary}"
            if outcome.data.get("rejected"):
                await self._fail(run, built, why, RunStatus.REJECTED)
                return
            if spec.on_failure is OnFailure.CONTINUE:
                failures.append(step.spec.name)
                continue
            if spec.on_failure is OnFailure.STOP:
                self._finish(run, RunStatus.FAILED, why + "; stopped (on_failure: stop)")
                await self._cleanup(run, built)
                return
            await self._fail(run, built, why, None)
            return
        await self._cleanup(run, built)
        if failures:
            self._finish(run, RunStatus.FAILED, f"steps failed: {', '.join(failures)} (on_failure: continue)")
        else:
            self._finish(run, RunStatus.SUCCEEDED, "all steps succeeded")

    async def _fail(self, run: Run, built: BuiltRun, why: str, status: RunStatus | None) -> None:
        """Roll back the steps that ran (on_failure: rollback) and end the run."""
        if built.runbook.spec.on_failure is not OnFailure.ROLLBACK:
            self._finish(run, status or RunStatus.FAILED, why)
            await self._cleanup(run, built)
            return
        await self._rollback(run, built, why, status)

    async def _rollback(self, run: Run, built: BuiltRun, why: str, status: RunStatus | None = None) -> None:
        self._set_status(run, RunStatus.ROLLING_BACK, why)
        # Every step whose action started is undone, the one that failed included: a command that exited
        # non-zero, timed out or whose verify failed may have done its work (see StepRecord.may_have_acted).
        ran = list(dict.fromkeys(rec.step_index for rec in run.steps if rec.may_have_acted))
        rolled = {rec.step_index for rec in run.steps if rec.phase == "rollback" and rec.status.finished}
        by_index = {b.index: b for b in built.steps}
        failed: list[str] = []
        for index in reversed(ran):
            step = by_index.get(index)
            if step is None or step.rollback is None or index in rolled:
                continue
            outcome = await self._step(run, built, step, rollback=True)
            if not outcome.ok:
                failed.append(f"{step.spec.name} ({outcome.summary})")
        await self._cleanup(run, built)
        if failed:
            self._finish(run, RunStatus.ROLLBACK_FAILED, f"{why}; rollback failed: {', '.join(failed)}")
        else:
            self._finish(run, status or RunStatus.ROLLED_BACK, f"{why}; the steps that ran were rolled back")

    async def _cleanup(self, run: Run, built: BuiltRun) -> None:
        """Let each action that ran undo what only lasts for the run (a silence), with its journaled data."""
        by_index = {b.index: b for b in built.steps}
        for rec in reversed(run.steps):
            if rec.phase == "rollback" or not rec.data:
                continue
            step = by_index.get(rec.step_index)
            if step is None:
                continue
            ctx = self._context(run, step, self._clock.now() + 30.0)
            try:
                async with asyncio.timeout(30.0):
                    await step.action.cleanup(ctx, rec.data)
            except Exception as exc:  # cleanup is best effort; the run's outcome stands
                log.warning("cleanup of step %s in run %d failed: %r", rec.name, run.id, exc)

    async def _step(self, run: Run, built: BuiltRun, step: BuiltStep, *, rollback: bool = False) -> Outcome:
        action = step.rollback if rollback else step.action
        if action is None:  # callers only pass steps with a rollback
            return Outcome(True, "nothing to do")
        verify = None if rollback else step.verify
        redact = self._redactor.with_values(built.sensitive)
        phase: StepPhase = "rollback" if rollback else step.phase
        now = self._clock.now()
        rec = StepRecord(
            len(run.steps),
            step.spec.name,
            phase,
            StepStatus.RUNNING,
            0,
            now,
            None,
            "",
            "",
            "",
            redact.value(action.plan()),
            step_index=step.index,
        )
        run.steps.append(rec)
        self._mark_step(run, rec)
        self._emit(run, "step")
        try:
            await self._durable()  # the journal says "running" before the side effect begins
        except StoreUnavailable as exc:
            outcome = Outcome(False, f"not started: the journal could not be written ({exc})", started=False)
            self._end_step(run, rec, outcome, redact)
            return outcome
        retries = 0 if rollback else step.spec.retries
        timeout = step.spec.timeout if rollback else step.timeout
        outcome = Outcome(False, "not run")
        outputs: list[str] = []
        began = False
        for attempt in range(retries + 1):
            rec.attempts = attempt + 1
            self._mark_step(run, rec, lazy=True)
            outcome = await self._attempt(run, step, action, timeout)
            began = began or outcome.started
            if outcome.ok and verify is not None:
                checked = await self._attempt(run, step, verify, timeout)
                outcome = Outcome(
                    checked.ok,
                    outcome.summary if checked.ok else f"verify failed: {checked.summary}",
                    _join(outcome.output, checked.output),
                    {**outcome.data, "verify": checked.data} if checked.data else outcome.data,
                )
            if outcome.output:
                outputs.append(outcome.output if retries == 0 else f"[attempt {attempt + 1}]\n{outcome.output}")
            if outcome.ok or outcome.data.get("rejected") or attempt == retries:
                break
            await self._sleep(step.spec.backoff * (2**attempt))
        outcome = Outcome(outcome.ok, outcome.summary, "\n".join(outputs), outcome.data, started=began)
        self._end_step(run, rec, outcome, redact)
        with contextlib.suppress(StoreUnavailable):
            await self._durable()  # and its outcome before the next step begins
        return outcome

    async def _attempt(self, run: Run, step: BuiltStep, action: Action, limit: float) -> Outcome:
        ctx = self._context(run, step, self._clock.now() + limit)
        try:
            async with asyncio.timeout(limit):
                return await action.execute(ctx)
        except TimeoutError:
            undone = await self._reclaim(run, step, action)
            after = f"; {', '.join(undone)} it had made" if undone else ""
            return Outcome(False, f"timed out after {format_duration(limit)}{after}")
        except ActionUnavailable as exc:
            return Outcome(False, str(exc), started=False)
        except Exception as exc:
            log.warning("step %s of run %d raised %r", step.spec.name, run.id, exc)
            return Outcome(False, f"error: {exc!r}")

    def _context(self, run: Run, step: BuiltStep, deadline: float) -> StepContext:
        async def decide(message: str, who: tuple[str, ...], within: float) -> Decision | None:
            # An approval step re-run after a restart (or retried) asks again, but its time counts from
            # the first time it asked: the earliest journal record of this step.
            records = [r.started_at for r in run.steps if r.step_index == step.index and r.phase != "rollback"]
            asked = min(records, default=self._clock.now())
            remaining = within - (self._clock.now() - asked)
            decision = await self._await_decision(run, message, who, remaining, False) if remaining > 0 else None
            self._audit_decision(run, decision, step.spec.name)
            return decision

        return StepContext(
            run_id=run.id,
            runbook=run.runbook,
            step=step.spec.name,
            clock=self._clock,
            http=self._http,
            prometheus=self._prometheus,
            alertmanager=self._alertmanager,
            deadline=deadline,
            dry_run=run.mode is RunMode.DRY_RUN,
            sleep=self._sleep,
            await_decision=decide,
            secrets=self._secrets,
            digest_key=self._digest_key,
        )

    def _end_step(self, run: Run, rec: StepRecord, outcome: Outcome, redact: Redactor) -> None:
        full = outcome.output
        # exec and http digest the raw bytes as they stream (more than `output` keeps); the rest, their text.
        digest = outcome.data.get("output_digest")
        if not isinstance(digest, str):
            digest = output_digest(self._digest_key, full.encode("utf-8", errors="replace"))
        rec.output_digest = digest
        rec.output = cap(redact.text(full), self._config.max_output_bytes)
        rec.summary = redact.text(outcome.summary)
        rec.data = redact.value(outcome.data)
        rec.status = StepStatus.SUCCEEDED if outcome.ok else StepStatus.FAILED
        rec.started = outcome.started
        rec.ended_at = self._clock.now()
        self._mark_step(run, rec)
        self._emit(run, "step")

    def _interrupt_step(self, run: Run, why: str) -> None:
        if run.steps and run.steps[-1].status is StepStatus.RUNNING:
            rec = run.steps[-1]
            rec.status = StepStatus.INTERRUPTED if why.startswith("interrupted") else StepStatus.FAILED
            rec.summary = why
            rec.ended_at = self._clock.now()
            self._mark_step(run, rec)
            self._emit(run, "step")

    # ---- approvals ------------------------------------------------------------------------------------

    async def _await_decision(
        self, run: Run, message: str, who: tuple[str, ...], within: float, run_level: bool
    ) -> Decision | None:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        may_self_approve = not run_level or self._self_approval_allowed(run)
        self._gates[run.id] = _Gate(future, who, run_level, may_self_approve)
        previous = run.status
        allowed = f" by {', '.join(who)}" if who else ""
        self._set_status(
            run, RunStatus.WAITING_APPROVAL, f"{message} (approval{allowed}, within {format_duration(within)})"
        )
        try:
            if not await self._race(asyncio.shield(future), within):
                return None
            return future.result()
        finally:
            self._gates.pop(run.id, None)
            if previous is not RunStatus.PENDING and not run.status.terminal:
                self._set_status(run, previous, "")

    def _approval_decided(self, run: Run, decision: Decision | None) -> None:
        """Keep the run-level decision on the run (and so on its change) and in the audit trail."""
        asked = run.approval
        if asked is None:
            return
        asked.decided_at = self._clock.now()
        if decision is None:
            asked.decision, asked.by, asked.reason = (
                "timed_out",
                SYSTEM,
                f"no decision within {format_duration(asked.timeout)}",
            )
        else:
            asked.decision = "approved" if decision.approved else "rejected"
            asked.by, asked.reason, asked.on_behalf_of = decision.who, decision.reason, decision.on_behalf_of
        self._mark_run(run)
        self._audit_decision(run, decision, None)

    def _audit_decision(self, run: Run, decision: Decision | None, step: str | None) -> None:
        if self._audit is None:
            return
        if decision is None:
            action, actor, reason = "approval_timed_out", SYSTEM, "no decision in time"
        else:
            action = "approved" if decision.approved else "rejected"
            actor, reason = decision.who, decision.reason
        after: dict[str, Any] = {"approval": action, "reason": reason}
        if decision is not None and decision.on_behalf_of:
            after["on_behalf_of"] = decision.on_behalf_of
        if step is not None:
            after["step"] = step  # an approval step's decision; without it, the run-level approval
        now = self._clock.now()
        self._audit.record(now, actor, "run", run.id, action, before={"approval": "requested"}, after=after)

    def _gate_is_run_level(self, run_id: int) -> bool:
        gate = self._gates.get(run_id)
        return gate is not None and gate.run_level

    def _decide(self, run_id: int, decision: Decision) -> Run:
        run = self._known(run_id)
        gate = self._gates.get(run_id)
        verb = "approve" if decision.approved else "reject"
        if gate is None or gate.future.done():
            allowed = "none" if run.status.terminal else "cancel"
            raise InvalidRunTransition(
                f"run {run_id} is {run.status.value}, not waiting for approval; cannot {verb} (allowed: {allowed})"
            )
        if gate.who and not {decision.who, *decision.identities} & set(gate.who):
            raise Forbidden("not_allowed", f"{decision.who!r} may not {verb} run {run_id}: only {', '.join(gate.who)}")
        if decision.approved and not gate.requester_may_approve and decision.who == run.requested_by:
            raise Forbidden(
                "separation_of_duties",
                f"separation of duties: {decision.who} requested this change and may not approve it; "
                "set approval.allow_self_approval in the runbook to permit it",
            )
        gate.future.set_result(decision)
        return run

    def _self_approval_allowed(self, run: Run) -> bool:
        """Separation of duties: whoever requested a normal change may not approve it, unless the runbook
        says so. An emergency change is approved by whoever can. The policy is the runbook's when the
        approval is asked, which is when the run is admitted."""
        loaded = self.library.get(run.runbook)
        if loaded is None:
            return False
        spec = loaded.spec
        return run.emergency or spec.change.type == "emergency" or spec.approval.allow_self_approval

    async def _race(self, waitable: Awaitable[Any], seconds: float) -> bool:
        """True when waitable finished first, False when `seconds` of the engine's sleep passed."""
        waiter = asyncio.ensure_future(waitable)
        timer = asyncio.ensure_future(self._sleep(seconds))
        try:
            done, _ = await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiter, timer):
                if not fut.done():
                    fut.cancel()
        return waiter in done

    # ---- state and journal ----------------------------------------------------------------------------

    def _set_status(self, run: Run, status: RunStatus, reason: str) -> None:
        if run.status is status and run.reason == reason:
            return
        run.status = status
        run.reason = reason
        self._mark_run(run)
        self._emit(run, "status")

    def _finish(self, run: Run, status: RunStatus, reason: str) -> None:
        run.status = status
        run.reason = reason
        run.ended_at = self._clock.now()
        self._mark_run(run)
        if status is not RunStatus.HELD and run.lock is not None:
            self._locks.release(run.lock, run.id)
        if status is not RunStatus.HELD:
            # Held waits for a human and ends later (cancelled); counting it now would count the run twice.
            labels = (("mode", run.mode.value), ("outcome", status.value), ("runbook", run.runbook))
            self._counters.inc(RUNS_TOTAL, labels)
        self._emit(run, "status")
        self._trim()

    def _trim(self) -> None:
        finished = [r.id for r in self._runs.values() if not r.active and r.status is not RunStatus.HELD]
        for run_id in finished[: max(len(finished) - self._config.history, 0)]:
            if run_id not in self._dirty_runs:  # its rows are not written yet
                self._runs.pop(run_id, None)

    def _mark_run(self, run: Run) -> None:
        self._dirty_runs.add(run.id)
        self._writer.changed()

    def _mark_step(self, run: Run, rec: StepRecord, *, lazy: bool = False) -> None:
        self._dirty_runs.add(run.id)
        self._dirty_steps.add((run.id, rec.index))
        if lazy:
            self._writer.touched()
        else:
            self._writer.changed()

    async def _durable(self) -> None:
        await self._writer.durable(self._writer.changed(), self._config.durable_timeout)

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for run_id in self._dirty_runs:
            run = self._runs.get(run_id)
            if run is not None:
                batch.upsert(UPSERT_RUN, run_id, run_row(run))
        for run_id, index in self._dirty_steps:
            run = self._runs.get(run_id)
            if run is not None and index < len(run.steps):
                batch.upsert(UPSERT_STEP, (run_id, index), step_row(run_id, run.steps[index]))
        self._dirty_runs.clear()
        self._dirty_steps.clear()

    def _emit(self, run: Run, kind: Any) -> None:
        event = RunEvent(run, kind)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("run listener failed")


def resolve_params(spec: RunbookFields, given: Mapping[str, str], *, by_label: bool) -> dict[str, str]:
    """Each declared param from `given` (by name; on triggered runs also by its label), or its default;
    every value must match the param's pattern. RunRefused names the param and the pattern."""
    if not by_label:
        unknown = sorted(set(given) - set(spec.params))
        if unknown:
            known = ", ".join(sorted(spec.params)) or "none"
            raise RunRefused("unknown_param", f"runbook {spec.name} has no param {unknown[0]!r} (params: {known})")
    out: dict[str, str] = {}
    for name, param in spec.params.items():
        label = param.label or name
        if name in given:
            value = given[name]
        elif by_label and label in given:
            value = given[label]
        elif param.default is not None:
            value = param.default
        elif param.required:
            source = f" (from label {label!r})" if by_label else ""
            raise RunRefused("missing_param", f"param {name}{source} is required and has no default")
        else:
            out[name] = ""
            continue
        if not isinstance(value, str) or re.fullmatch(param.pattern, value) is None:
            shown = repr(value)[:_VALUE_ECHO]
            raise RunRefused("bad_param", f"param {name}={shown} does not match its pattern {param.pattern}")
        out[name] = value
    return out


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)
