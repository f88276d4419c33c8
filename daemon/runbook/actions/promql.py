"""`promql`: one instant query, judged by `expect` (a check before acting, or a verify after).

The query is a template rendered once. Alert data reaches it only through params, and a param's allowlist
pattern is what keeps a label value from changing the query's meaning: give params that end up inside a
PromQL string (``instance="{{ params.instance }}"``) a pattern without quotes or backslashes, such as
``^[a-z0-9.:-]+$``. (The sandbox renders no PromQL-aware escaping.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext
from daemon.runbook.render import RenderError
from integrations.prometheus.client import PrometheusError, QueryResult
from integrations.prometheus.conditions import SHOWN_SAMPLES, Expect, format_sample

MAX_QUERY_CHARS = 16 * 1024


class PromqlSpec(ActionSpec):
    requires: ClassVar[tuple[str, ...]] = ("prometheus",)
    query: str
    expect: Expect

    def build(self, render: Renderer) -> PromqlAction:
        return PromqlAction(rendered_query(render, self.query), self.expect)


def rendered_query(render: Renderer, template: str) -> str:
    query = render(template).strip()
    if not query:
        raise RenderError(f"the query {template!r} renders to nothing")
    if len(query) > MAX_QUERY_CHARS:
        raise RenderError(f"the query is {len(query)} characters long, over {MAX_QUERY_CHARS}")
    return query


def result_output(result: QueryResult, shown: int = SHOWN_SAMPLES * 4) -> str:
    lines = [format_sample(s) for s in result.samples[:shown]]
    if len(result.samples) > shown:
        lines.append(f"... and {len(result.samples) - shown} more samples")
    lines.extend(f"warning: {w}" for w in result.warnings)
    return "\n".join(lines)


@dataclass(frozen=True)
class PromqlAction(Action):
    kind: ClassVar[str] = "promql"
    query: str
    expect: Expect

    def plan(self) -> dict[str, Any]:
        return {"query": self.query, "expect": self.expect.describe()}

    async def execute(self, ctx: StepContext) -> Outcome:
        prometheus = ctx.prometheus
        if prometheus is None:
            return Outcome(False, "no prometheus: section in the config; the promql step cannot run", started=False)
        try:
            result = await prometheus.query(self.query)
        except PrometheusError as exc:
            again = "retryable" if exc.retryable else "not retryable"
            return Outcome(False, f"query failed ({again}): {exc.message}", data={"retryable": exc.retryable})
        verdict = self.expect.judge(result)
        return Outcome(
            verdict.ok, verdict.reason, result_output(result), {"samples": len(result.samples), "ok": verdict.ok}
        )
