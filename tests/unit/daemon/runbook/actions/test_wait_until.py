"""wait_until: polls on the step's clock until expect holds or the step's time is up; no real sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import ValidationError

from daemon.clock import ManualClock
from daemon.runbook.actions import ACTIONS
from daemon.runbook.actions.wait_until import WaitUntilAction, WaitUntilSpec
from tests.unit.integrations.steps import START, Sleeps, context, render, vector
from tests.unit.integrations.upstream import Upstream, serving

QUERY = "/prom/api/v1/query"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as server:
        yield server


def action(interval: str = "5s") -> WaitUntilAction:
    return WaitUntilSpec.model_validate(
        {"query": 'up{job="{{ params.job }}"}', "expect": {"value_eq": 1}, "interval": interval}
    ).build(render({"job": "api"}))


def test_registered_with_a_default_interval() -> None:
    assert ACTIONS["wait_until"] is WaitUntilSpec
    spec = WaitUntilSpec.model_validate({"query": "up", "expect": {"nonempty": True}})
    assert spec.interval == 5.0
    assert spec.build(render()).plan() == {"query": "up", "expect": "at least one sample", "interval": "5s"}


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="longer than 0s"):
        WaitUntilSpec.model_validate({"query": "up", "expect": {"nonempty": True}, "interval": "0s"})


async def test_waits_until_the_target_is_up(upstream: Upstream) -> None:
    state = {"up": "0"}
    upstream.handle("POST", QUERY, lambda request: _answer(vector(({"job": "api"}, state["up"]))))
    sleeps = Sleeps(ManualClock(START))

    def recover_after_three_polls() -> None:
        if len(sleeps.slept) == 3:
            state["up"] = "1"

    sleeps.hook = recover_after_three_polls
    outcome = await action().execute(context(upstream, sleeps=sleeps))
    assert outcome.ok, outcome.summary
    assert sleeps.slept == [5.0, 5.0, 5.0]
    assert outcome.summary.startswith("after 15s (4 polls): 1 sample, every sample == 1")
    assert outcome.data == {"polls": 4, "ok": True}
    assert len(upstream.requests) == 4


async def test_gives_up_before_the_step_deadline(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=vector(({"job": "api"}, "0")))
    sleeps = Sleeps(ManualClock(START))
    outcome = await action("10s").execute(context(upstream, timeout=35.0, sleeps=sleeps))
    assert not outcome.ok
    assert sleeps.slept == [10.0, 10.0, 10.0]  # polls at 0, 10, 20, 30; a fifth would pass the 35 s deadline
    assert outcome.summary == (
        "every sample == 1 did not hold within 30s (4 polls); last: expected every sample == 1; "
        '1 of 1 sample not: {job="api"} 0'
    )
    assert outcome.output == '{job="api"} 0'


async def test_retryable_errors_cost_only_a_poll(upstream: Upstream) -> None:
    answers = [(503, {"status": "error", "errorType": "unavailable", "error": "starting"}), (200, vector(({}, "1")))]
    upstream.handle("POST", QUERY, lambda request: _answer(answers[0][1], answers.pop(0)[0]))
    sleeps = Sleeps(ManualClock(START))
    outcome = await action().execute(context(upstream, sleeps=sleeps))
    assert outcome.ok
    assert outcome.data["polls"] == 2


async def test_a_refused_query_fails_at_once(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, 400, {"status": "error", "errorType": "bad_data", "error": "unknown function"})
    sleeps = Sleeps(ManualClock(START))
    outcome = await action().execute(context(upstream, sleeps=sleeps))
    assert not outcome.ok
    assert sleeps.slept == []
    assert outcome.summary == (
        f"query refused: Prometheus POST {upstream.url('/prom/api/v1/query')}: HTTP 400: bad_data: unknown function"
    )


async def _answer(body: object, status: int = 200) -> web.StreamResponse:
    return web.json_response(body, status=status)
