"""`wait_until`: poll an instant query every `interval` until `expect` holds, or fail at the step's timeout.

For "wait until the restarted target is scraped as up again", "until the error rate is back under 1 %".
The first poll is immediate. A query Prometheus refuses (a syntax error, 4xx) fails the step at once; a
retryable failure (Prometheus restarting, a timeout) only costs that poll. Time is the step context's
clock and sleep, so tests drive it with a ManualClock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from daemon.durations import PositiveDuration, format_duration
from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext
from daemon.runbook.actions.promql import rendered_query, result_output
from integrations.prometheus.client import PrometheusError
from integrations.prometheus.conditions import Expect

DEFAULT_INTERVAL = 5.0


class WaitUntilSpec(ActionSpec):
    requires: ClassVar[tuple[str, ...]] = ("prometheus",)
    query: str
    expect: Expect
    interval: PositiveDuration = DEFAULT_INTERVAL

    def build(self, render: Renderer) -> WaitUntilAction:
        return WaitUntilAction(rendered_query(render, self.query), self.expect, self.interval)


@dataclass(frozen=True)
class WaitUntilAction(Action):
    kind: ClassVar[str] = "wait_until"
    query: str
    expect: Expect
    interval: float

    def plan(self) -> dict[str, Any]:
        return {"query": self.query, "expect": self.expect.describe(), "interval": format_duration(self.interval)}

    async def execute(self, ctx: StepContext) -> Outcome:
        prometheus = ctx.prometheus
        if prometheus is None:
            return Outcome(False, "no prometheus: section in the config; the wait_until step cannot run", started=False)
        started = ctx.clock.now()
        polls = 0
        last = "no answer yet"
        output = ""
        while True:
            polls += 1
            try:
                result = await prometheus.query(self.query)
            except PrometheusError as exc:
                if not exc.retryable:
                    return Outcome(False, f"query refused: {exc.message}", data={"polls": polls, "ok": False})
                last = f"query failed: {exc.message}"
            else:
                verdict = self.expect.judge(result)
                output = result_output(result)
                if verdict.ok:
                    waited = format_duration(ctx.clock.now() - started)
                    return Outcome(
                        True, f"after {waited} ({polls} polls): {verdict.reason}", output, {"polls": polls, "ok": True}
                    )
                last = verdict.reason
            now = ctx.clock.now()
            if now + self.interval >= ctx.deadline:  # the engine ends the step at the deadline itself
                waited = format_duration(now - started)
                return Outcome(
                    False,
                    f"{self.expect.describe()} did not hold within {waited} ({polls} polls); last: {last}",
                    output,
                    {"polls": polls, "ok": False},
                )
            await ctx.pause(self.interval)
