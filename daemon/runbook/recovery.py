"""Crash recovery: runs the journal shows active at start-up are resumed where that is safe, otherwise
rolled back or held for a human, by the runbook's on_interrupt policy. No run stays `running`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.runbook.actions.approval import ApprovalAction
from daemon.runbook.actions.base import ActionUnavailable
from daemon.runbook.approvals import Approvals
from daemon.runbook.build import BuiltRun
from daemon.runbook.errors import RunRefused
from daemon.runbook.library import LoadedRunbook, RunbookLibrary
from daemon.runbook.model import Run, RunStatus, StepStatus
from daemon.runbook.run_state import RunState
from daemon.runbook.runner import StepRunner
from daemon.runbook.spec import OnInterrupt

Build = Callable[[LoadedRunbook, Mapping[str, str], Run], BuiltRun]
"""Builds a live run (refusing, like start(), when an integration it needs is not configured)."""


class Recovery:
    def __init__(
        self,
        *,
        state: RunState,
        library: RunbookLibrary,
        clock: Clock,
        approvals: Approvals,
        runner: StepRunner,
        build: Build,
    ) -> None:
        self._state = state
        self._library = library
        self._clock = clock
        self._approvals = approvals
        self._runner = runner
        self._build = build
        self.pending: list[Run] = []
        """Active runs restored from the journal, for recover()."""

    async def recover(self) -> None:
        runs, self.pending = self.pending, []
        for run in runs:
            # Before anything is re-run: a resumed step makes a new one of what it left behind.
            await self._reclaim_in_flight(run)
            self._recover_one(run)
        await self._state.flush()

    def _recover_one(self, run: Run) -> None:
        loaded = self._library.get(run.runbook)
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
                self._approvals.decided(run, None)
                self._state.finish(run, RunStatus.REJECTED, f"no approval within {format_duration(asked.timeout)}")
                return
            self._runner.schedule(run, built, resume=False)
            return
        spec = loaded.spec
        last = run.steps[-1] if run.steps else None
        in_flight = last is not None and last.status in (StepStatus.RUNNING, StepStatus.INTERRUPTED)
        if last is not None and in_flight:
            last.status = StepStatus.INTERRUPTED
            last.ended_at = last.ended_at or self._clock.now()
            last.summary = last.summary or "interrupted by a restart"
            self._state.mark_step(run, last)
        if run.status is RunStatus.ROLLING_BACK or (last is not None and last.phase == "rollback"):
            if in_flight and last is not None:
                self._hold(run, f"interrupted by a restart during the rollback of step {last.name}")
            else:
                self._runner.schedule(run, built, resume=True, rollback_only=True)
            return
        if not in_flight or last is None:
            self._runner.schedule(run, built, resume=True)
            return
        step = next((b for b in built.steps if b.index == last.step_index), None)
        idempotent = step is not None and (step.spec.idempotent or isinstance(step.action, ApprovalAction))
        if idempotent:
            self._runner.schedule(run, built, resume=True)
        elif spec.on_interrupt is OnInterrupt.ROLLBACK:
            run.reason = f"interrupted by a restart during step {last.name}, which is not idempotent"
            self._runner.schedule(run, built, resume=True, rollback_only=True)
        else:
            self._hold(run, f"interrupted by a restart during step {last.name}, which is not idempotent")

    async def _reclaim_in_flight(self, run: Run) -> None:
        """The step in flight at the crash may have made something (a silence) whose handle never reached the
        journal; let its action find and undo it, and say so on the step."""
        last = run.steps[-1] if run.steps else None
        loaded = self._library.get(run.runbook)
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
        undone = await self._runner.reclaim(run, step, action)
        if undone:
            last.summary = f"{last.summary or 'interrupted by a restart'}; {', '.join(undone)} it had made"
            self._state.mark_step(run, last)

    def _hold(self, run: Run, reason: str) -> None:
        self._state.finish(run, RunStatus.HELD, reason + "; held for a human (cancel the run to release it)")
