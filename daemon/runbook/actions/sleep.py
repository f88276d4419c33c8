"""`sleep`: wait a while (let a restarted service settle before the next check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from daemon.durations import PositiveDuration, format_duration
from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext


class SleepSpec(ActionSpec):
    duration: PositiveDuration

    def build(self, render: Renderer) -> SleepAction:
        return SleepAction(self.duration)


@dataclass(frozen=True)
class SleepAction(Action):
    kind: ClassVar[str] = "sleep"
    duration: float

    def plan(self) -> dict[str, Any]:
        return {"duration": format_duration(self.duration)}

    async def execute(self, ctx: StepContext) -> Outcome:
        await ctx.pause(self.duration)
        return Outcome(True, f"slept {format_duration(self.duration)}")
