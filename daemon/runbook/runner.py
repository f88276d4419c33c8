"""Driving a run: admission (admission.py), then the steps with their retries and verify,
rollback and cleanup. Every step is journaled as running, and committed, before its side effect starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import StoreUnavailable
from daemon.runbook.actions.base import Action, ActionUnavailable, Decision, Outcome, StepContext
from daemon.runbook.admission import Admission
from daemon.runbook.approvals import Approvals
from daemon.runbook.build import BuiltRun, BuiltStep
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.digest import output_digest
from daemon.runbook.model import Run, RunMode, RunStatus, StepPhase, StepRecord, StepStatus
from daemon.runbook.redact import Redactor, cap
from daemon.runbook.run_state import RunState
from daemon.runbook.spec import OnFailure
from daemon.tasks import TaskRegistry

if TYPE_CHECKING:
    from integrations.alertmanager.client import AlertmanagerClient
    from integrations.prometheus.client import PrometheusClient

# The engine's logger name, as before the split: log configuration filters on it.
log = logging.getLogger("daemon.runbook.engine")

_RECLAIM_TIMEOUT = 10.0
"""Per action: how long finding and undoing what a lost attempt left behind may take (recovery waits for it)."""


class StepRunner:
    def __init__(
        self,
        *,
        state: RunState,
        approvals: Approvals,
        clock: Clock,
        tasks: TaskRegistry,
        http: aiohttp.ClientSession,
        config: RunbooksConfig,
        prometheus: PrometheusClient | None,
        alertmanager: AlertmanagerClient | None,
        secrets: Mapping[str, str],
        redactor: Redactor,
        sleep: Callable[[float], Awaitable[None]],
        digest_key: bytes,
    ) -> None:
        self._state = state
        self._approvals = approvals
        self._admission = Admission(state=state, approvals=approvals, clock=clock, sleep=sleep)
        self._clock = clock
        self._tasks = tasks
        self._http = http
        self._config = config
        self._prometheus = prometheus
        self._alertmanager = alertmanager
        self._secrets = secrets
        self._redactor = redactor
        self._sleep = sleep
        self._digest_key = digest_key
        self.task_of: dict[int, asyncio.Task[Any]] = {}
        self.aborts: dict[int, str] = {}
        """Why a run was cancelled mid-run, for its task to record when the cancellation reaches it."""

    def schedule(self, run: Run, built: BuiltRun, *, resume: bool, rollback_only: bool = False) -> None:
        name = f"runbook-run-{run.id}"

        async def drive() -> None:
            task = asyncio.current_task()
            if task is not None:
                self.task_of[run.id] = task
            try:
                await self._drive(run, built, resume=resume, rollback_only=rollback_only)
            finally:
                self.task_of.pop(run.id, None)

        self._tasks.start(name, drive())

    async def _drive(self, run: Run, built: BuiltRun, *, resume: bool, rollback_only: bool) -> None:
        try:
            await self._state.durable()
            if not resume and not await self._admission.admit(run, built):
                return
            if rollback_only:
                await self._rollback(run, built, run.reason or "rolling back")
            else:
                await self._run_steps(run, built)
        except asyncio.CancelledError:
            if run.status.terminal:
                return  # cancelled before it started: cancel() already recorded it
            abort = self.aborts.pop(run.id, None)
            self._interrupt_step(run, "aborted" if abort is not None else "interrupted by shutdown")
            if abort is not None:
                self._state.finish(run, RunStatus.ABORTED, f"{abort}; completed steps were not rolled back")
                await self._cleanup(run, built)  # silences and the like still end with the run
                return
            run.reason = "interrupted by shutdown; recover() decides at the next start"
            self._state.mark_run(run)
            raise
        except Exception as exc:
            log.exception("run %d of %s failed inside the engine", run.id, run.runbook)
            self._interrupt_step(run, f"engine error: {exc!r}")
            self._state.finish(run, RunStatus.FAILED, f"engine error: {exc!r}")
        finally:
            if run.status.terminal and run.status is not RunStatus.HELD and run.lock is not None:
                self._state.locks.release(run.lock, run.id)
            self._approvals.release(run.id)

    async def _run_steps(self, run: Run, built: BuiltRun) -> None:
        spec = built.runbook.spec
        done = {rec.step_index for rec in run.steps if rec.phase != "rollback" and rec.status.finished}
        failures = [rec.name for rec in run.steps if rec.phase != "rollback" and rec.status is StepStatus.FAILED]
        if run.started_at is None:
            run.started_at = self._clock.now()
        self._state.set_status(run, RunStatus.RUNNING, "")
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
                self._state.finish(run, RunStatus.FAILED, why + "; stopped (on_failure: stop)")
                await self._cleanup(run, built)
                return
            await self._fail(run, built, why, None)
            return
        await self._cleanup(run, built)
        if failures:
            self._state.finish(run, RunStatus.FAILED, f"steps failed: {', '.join(failures)} (on_failure: continue)")
        else:
            self._state.finish(run, RunStatus.SUCCEEDED, "all steps succeeded")

    async def _fail(self, run: Run, built: BuiltRun, why: str, status: RunStatus | None) -> None:
        """Roll back the steps that ran (on_failure: rollback) and end the run."""
        if built.runbook.spec.on_failure is not OnFailure.ROLLBACK:
            self._state.finish(run, status or RunStatus.FAILED, why)
            await self._cleanup(run, built)
            return
        await self._rollback(run, built, why, status)

    async def _rollback(self, run: Run, built: BuiltRun, why: str, status: RunStatus | None = None) -> None:
        self._state.set_status(run, RunStatus.ROLLING_BACK, why)
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
            self._state.finish(run, RunStatus.ROLLBACK_FAILED, f"{why}; rollback failed: {', '.join(failed)}")
        else:
            self._state.finish(run, status or RunStatus.ROLLED_BACK, f"{why}; the steps that ran were rolled back")

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
        self._state.mark_step(run, rec)
        self._state.emit(run, "step")
        try:
            await self._state.durable()  # the journal says "running" before the side effect begins
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
            self._state.mark_step(run, rec, lazy=True)
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
            await self._state.durable()  # and its outcome before the next step begins
        return outcome

    async def _attempt(self, run: Run, step: BuiltStep, action: Action, limit: float) -> Outcome:
        ctx = self._context(run, step, self._clock.now() + limit)
        try:
            async with asyncio.timeout(limit):
                return await action.execute(ctx)
        except TimeoutError:
            undone = await self.reclaim(run, step, action)
            after = f"; {', '.join(undone)} it had made" if undone else ""
            return Outcome(False, f"timed out after {format_duration(limit)}{after}")
        except ActionUnavailable as exc:
            return Outcome(False, str(exc), started=False)
        except Exception as exc:
            log.warning("step %s of run %d raised %r", step.spec.name, run.id, exc)
            return Outcome(False, f"error: {exc!r}")

    async def reclaim(self, run: Run, step: BuiltStep, action: Action) -> list[str]:
        """Let the action find and undo what a lost attempt of it made; what it undid, for the step's summary."""
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

    def _context(self, run: Run, step: BuiltStep, deadline: float) -> StepContext:
        async def decide(message: str, who: tuple[str, ...], within: float) -> Decision | None:
            # An approval step re-run after a restart (or retried) asks again, but its time counts from
            # the first time it asked: the earliest journal record of this step.
            records = [r.started_at for r in run.steps if r.step_index == step.index and r.phase != "rollback"]
            asked = min(records, default=self._clock.now())
            remaining = within - (self._clock.now() - asked)
            decision = await self._approvals.wait(run, message, who, remaining, False) if remaining > 0 else None
            self._approvals.audit(run, decision, step.spec.name)
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
        self._state.mark_step(run, rec)
        self._state.emit(run, "step")

    def _interrupt_step(self, run: Run, why: str) -> None:
        if run.steps and run.steps[-1].status is StepStatus.RUNNING:
            rec = run.steps[-1]
            rec.status = StepStatus.INTERRUPTED if why.startswith("interrupted") else StepStatus.FAILED
            rec.summary = why
            rec.ended_at = self._clock.now()
            self._state.mark_step(run, rec)
            self._state.emit(run, "step")


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)
