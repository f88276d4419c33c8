"""The approval desk: a run (or an approval step) waiting for a decision, who may give it, and its record."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from daemon.audit import SYSTEM, AuditLog
from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import Forbidden
from daemon.runbook.actions.base import Decision
from daemon.runbook.errors import InvalidRunTransition
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.model import Run, RunStatus
from daemon.runbook.race import race
from daemon.runbook.run_state import RunState


@dataclass
class _Gate:
    future: asyncio.Future[Decision]
    who: tuple[str, ...]
    run_level: bool
    requester_may_approve: bool = True


class Approvals:
    def __init__(
        self,
        *,
        state: RunState,
        library: RunbookLibrary,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]],
        audit: AuditLog | None,
    ) -> None:
        self._state = state
        self._library = library
        self._clock = clock
        self._sleep = sleep
        self._audit = audit
        self._gates: dict[int, _Gate] = {}

    async def wait(
        self, run: Run, message: str, who: tuple[str, ...], within: float, run_level: bool
    ) -> Decision | None:
        """The decision, or None when `within` seconds passed without one."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        may_self_approve = not run_level or self._self_approval_allowed(run)
        self._gates[run.id] = _Gate(future, who, run_level, may_self_approve)
        previous = run.status
        allowed = f" by {', '.join(who)}" if who else ""
        self._state.set_status(
            run, RunStatus.WAITING_APPROVAL, f"{message} (approval{allowed}, within {format_duration(within)})"
        )
        try:
            if not await race(asyncio.shield(future), within, self._sleep):
                return None
            return future.result()
        finally:
            self._gates.pop(run.id, None)
            if previous is not RunStatus.PENDING and not run.status.terminal:
                self._state.set_status(run, previous, "")

    def release(self, run_id: int) -> None:
        self._gates.pop(run_id, None)

    def decided(self, run: Run, decision: Decision | None) -> None:
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
        self._state.mark_run(run)
        self.audit(run, decision, None)

    def audit(self, run: Run, decision: Decision | None, step: str | None) -> None:
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

    def is_run_level(self, run_id: int) -> bool:
        gate = self._gates.get(run_id)
        return gate is not None and gate.run_level

    def decide(self, run: Run, decision: Decision) -> None:
        gate = self._gates.get(run.id)
        verb = "approve" if decision.approved else "reject"
        if gate is None or gate.future.done():
            allowed = "none" if run.status.terminal else "cancel"
            raise InvalidRunTransition(
                f"run {run.id} is {run.status.value}, not waiting for approval; cannot {verb} (allowed: {allowed})"
            )
        if gate.who and not {decision.who, *decision.identities} & set(gate.who):
            raise Forbidden("not_allowed", f"{decision.who!r} may not {verb} run {run.id}: only {', '.join(gate.who)}")
        if decision.approved and not gate.requester_may_approve and decision.who == run.requested_by:
            raise Forbidden(
                "separation_of_duties",
                f"separation of duties: {decision.who} requested this change and may not approve it; "
                "set approval.allow_self_approval in the runbook to permit it",
            )
        gate.future.set_result(decision)

    def _self_approval_allowed(self, run: Run) -> bool:
        """Separation of duties: whoever requested a normal change may not approve it, unless the runbook
        says so. An emergency change is approved by whoever can. The policy is the runbook's when the
        approval is asked, which is when the run is admitted."""
        loaded = self._library.get(run.runbook)
        if loaded is None:
            return False
        spec = loaded.spec
        return run.emergency or spec.change.type == "emergency" or spec.approval.allow_self_approval
