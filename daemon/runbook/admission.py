"""Admission: what a run waits for before its first step, the run-level approval and then its lock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.runbook.approvals import Approvals
from daemon.runbook.build import BuiltRun
from daemon.runbook.guards import LockId
from daemon.runbook.model import Approval, Run, RunStatus
from daemon.runbook.race import race
from daemon.runbook.run_state import RunState


class Admission:
    def __init__(
        self,
        *,
        state: RunState,
        approvals: Approvals,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._state = state
        self._approvals = approvals
        self._clock = clock
        self._sleep = sleep

    async def admit(self, run: Run, built: BuiltRun) -> bool:
        """Run-level approval, then the lock. False when the run ended here (rejected, skipped)."""
        spec = built.runbook.spec
        if spec.approval.required or spec.change.type == "normal":
            asked = run.approval
            if asked is None:
                # Journaled with the waiting status: after a restart the timeout goes on from this moment.
                asked = run.approval = Approval(
                    self._clock.now(), built.approval_message, spec.approval.who, spec.approval.timeout
                )
                self._state.mark_run(run)
            if asked.decision is None:  # approved before a restart: the journaled approval stands
                remaining = asked.expires_at - self._clock.now()
                decision = None
                if remaining > 0:
                    decision = await self._approvals.wait(run, asked.message, asked.who, remaining, True)
                self._approvals.decided(run, decision)
                if decision is None:
                    self._state.finish(run, RunStatus.REJECTED, f"no approval within {format_duration(asked.timeout)}")
                    return False
                if not decision.approved:
                    self._state.finish(run, RunStatus.REJECTED, f"rejected by {decision.decider}: {decision.reason}")
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
        locks = self._state.locks
        while not locks.try_take(lock, run.id):
            holder = locks.holder(lock)
            if owner is None and holder is not None and (held := self._state.runs.get(holder)) is not None:
                holder_text = f"{holder} ({held.runbook})"
            else:
                holder_text = str(holder)
            if on_conflict == "skip":
                self._state.finish(run, RunStatus.SKIPPED, f"{shown} is held by run {holder_text}")
                return False
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                self._state.finish(
                    run,
                    RunStatus.SKIPPED,
                    f"{shown} still held by run {holder_text} after {format_duration(wait_timeout)}",
                )
                return False
            self._state.set_status(run, RunStatus.WAITING_LOCK, f"waiting for {shown} held by run {holder_text}")
            await race(locks.released(lock), remaining, self._sleep)
        return True
