"""The promql action: rendered once, judged by expect, failures as outcomes that say whether to retry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from daemon.runbook.actions import ACTIONS
from daemon.runbook.actions.promql import PromqlSpec
from daemon.runbook.render import RenderError
from daemon.runbook.spec import Runbook
from tests.unit.integrations.steps import context, render, vector
from tests.unit.integrations.upstream import Upstream, serving

QUERY = "/prom/api/v1/query"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as server:
        yield server


def spec(query: str = 'up{instance="{{ params.instance }}"}', **expect: object) -> PromqlSpec:
    return PromqlSpec.model_validate({"query": query, "expect": expect or {"value_eq": 1}})


def test_registered_and_needs_prometheus() -> None:
    assert ACTIONS["promql"] is PromqlSpec
    assert PromqlSpec.requires == ("prometheus",)


def test_label_values_are_data_rendered_once() -> None:
    action = spec().build(render({"instance": "{{ 7*7 }}"}))
    assert action.query == 'up{instance="{{ 7*7 }}"}'
    assert action.plan() == {"query": 'up{instance="{{ 7*7 }}"}', "expect": "every sample == 1"}


def test_a_query_that_renders_to_nothing_is_refused() -> None:
    with pytest.raises(RenderError, match="renders to nothing"):
        spec("{{ params.q }}").build(render({"q": "  "}))


def test_spec_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        PromqlSpec.model_validate({"query": "up", "expect": {"value_eq": 1}, "timeout": "5s"})


async def test_passes_when_every_sample_meets_expect(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=vector(({"instance": "db-1"}, "1")))
    outcome = await spec().build(render({"instance": "db-1"})).execute(context(upstream))
    assert outcome.ok
    assert outcome.summary == '1 sample, every sample == 1: {instance="db-1"} 1'
    assert outcome.output == '{instance="db-1"} 1'
    assert outcome.data == {"samples": 1, "ok": True}
    assert upstream.requests[0].form["query"] == 'up{instance="db-1"}'


async def test_fails_naming_the_samples_that_do_not(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=vector(({"instance": "db-1"}, "0")))
    outcome = await spec().build(render({"instance": "db-1"})).execute(context(upstream))
    assert not outcome.ok
    assert outcome.summary == 'expected every sample == 1; 1 of 1 sample not: {instance="db-1"} 0'


async def test_query_errors_are_outcomes_with_prometheus_text(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"})
    outcome = await spec("up{").build(render()).execute(context(upstream))
    assert not outcome.ok
    assert "not retryable" in outcome.summary
    assert "bad_data: parse error at char 4" in outcome.summary
    assert outcome.data == {"retryable": False}


async def test_without_prometheus_the_step_fails_clearly(upstream: Upstream) -> None:
    outcome = await spec("up").build(render()).execute(context(upstream, prometheus=False))
    assert not outcome.ok
    assert "no prometheus: section" in outcome.summary
    assert upstream.requests == []


def test_the_three_actions_are_runbook_steps() -> None:
    runbook = Runbook.model_validate(
        {
            "name": "restart-db",
            "params": {"instance": {"pattern": "^[a-z0-9.:-]+$"}},
            "steps": [
                {
                    "name": "silence",
                    "silence": {
                        "matchers": [{"name": "instance", "value": "{{ params.instance }}"}],
                        "duration": "15m",
                    },
                },
                {
                    "name": "is-down",
                    "promql": {"query": 'up{instance="{{ params.instance }}"}', "expect": {"value_eq": 0}},
                },
                {
                    "name": "recovered",
                    "timeout": "5m",
                    "wait_until": {"query": "up", "expect": {"value_eq": 1}, "interval": "10s"},
                },
            ],
        }
    )
    assert [step.action[0] for step in runbook.steps] == ["silence", "promql", "wait_until"]
