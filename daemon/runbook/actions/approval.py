"""`approval`: pause the run until someone allowed approves or rejects it, or the timeout passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from daemon.durations import PositiveDuration, format_duration
from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext


class ApprovalSpec(ActionSpec):
    who: tuple[str, ...] = ()
    """Who may decide: principal names, `role:<role>` (that role or higher), `group:<group>` (a group the
    trusted proxy names); empty: any principal with role approver."""
    timeout: PositiveDuration = 3600.0
    message: str = Field(default="approve to continue")

    def build(self, render: Renderer) -> ApprovalAction:
        return ApprovalAction(self.who, self.timeout, render(self.message))


@dataclass(frozen=True)
class ApprovalAction(Action):
    kind: ClassVar[str] = "approval"
    who: tuple[str, ...]
    timeout: float
    message: str

    def plan(self) -> dict[str, Any]:
        return {"who": list(self.who), "timeout": format_duration(self.timeout), "message": self.message}

    async def execute(self, ctx: StepContext) -> Outcome:
        if ctx.await_decision is None:
            return Outcome(False, "approvals are not available here", started=False)
        decision = await ctx.await_decision(self.message, self.who, self.timeout)
        if decision is None:
            return Outcome(False, f"no decision within {format_duration(self.timeout)}", data={"timed_out": True})
        data: dict[str, object] = {"approved": decision.approved, "who": decision.who, "reason": decision.reason}
        if decision.on_behalf_of:
            data["on_behalf_of"] = decision.on_behalf_of
        if decision.approved:
            return Outcome(True, f"approved by {decision.decider}", data=data)
        return Outcome(False, f"rejected by {decision.decider}: {decision.reason}", data={**data, "rejected": True})
