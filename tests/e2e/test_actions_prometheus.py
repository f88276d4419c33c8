"""Instant queries against the real Prometheus 2.42: the client, then the promql and wait_until actions.

The module starts its own stack (target, Alertmanager, Prometheus, itsmd), because it flips the flappy target
and the session-wide stack's alert lifecycle test must not see those outages.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from daemon.clock import SystemClock
from daemon.runbook.actions.base import StepContext
from daemon.runbook.actions.promql import PromqlSpec
from daemon.runbook.actions.wait_until import WaitUntilSpec
from daemon.runbook.render import TemplateRenderer
from integrations.prometheus.client import PrometheusClient, PrometheusError

from .stack import JOB, SERVICE, Binaries, MissingBinary, Stack

pytestmark = pytest.mark.e2e

UP = f'up{{job="{JOB}"}}'


@pytest.fixture(scope="module")
def prom_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        binaries = Binaries.find()
    except MissingBinary as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    stack = Stack(Path(tmp_path_factory.mktemp("prom-actions")), binaries)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def prom(prom_stack: Stack, session: aiohttp.ClientSession) -> PrometheusClient:
    return PrometheusClient(session, prom_stack.prom_url, timeout=5.0)


async def test_query_a_real_series(prom: PrometheusClient, prom_stack: Stack) -> None:
    prom_stack.set_target_down(False)
    result = await prom.query(UP)
    assert result.result_type == "vector"
    (sample,) = result.samples
    assert sample.value == 1.0
    assert sample.labels["job"] == JOB
    assert sample.labels["service"] == SERVICE
    assert sample.labels["instance"] == f"127.0.0.1:{prom_stack.target_port}"


async def test_special_values_and_scalars_from_real_prometheus(prom: PrometheusClient) -> None:
    nan, inf = (await prom.query("vector(0) / 0")).samples, (await prom.query("vector(1) / 0")).samples
    assert math.isnan(nan[0].value)
    assert inf[0].value == math.inf
    scalar = await prom.query("scalar(vector(-1) / 0)")
    assert (scalar.result_type, scalar.samples[0].value) == ("scalar", -math.inf)


async def test_real_parse_error_is_not_retryable(prom: PrometheusClient) -> None:
    with pytest.raises(PrometheusError) as caught:
        await prom.query("up{")
    assert not caught.value.retryable
    assert caught.value.status == 400
    assert "bad_data:" in str(caught.value)
    assert "parse error" in str(caught.value)


async def test_range_vector_is_refused_with_a_hint(prom: PrometheusClient) -> None:
    with pytest.raises(PrometheusError, match="max_over_time"):
        await prom.query(f"{UP}[1m]")


# ------------------------------------------------------------------------------------------- actions

FLIP_TIMEOUT = 20.0  # scrape and evaluation every 1 s: a flip shows in up{} within ~1-2 s


Sleep = Callable[[float], Awaitable[None]]


def step(prom: PrometheusClient, timeout: float, sleep: Sleep | None = None) -> StepContext:
    clock = SystemClock()
    return StepContext(
        run_id=1,
        runbook="e2e",
        step="check",
        clock=clock,
        http=prom.session,
        prometheus=prom,
        alertmanager=None,
        deadline=clock.now() + timeout,
        sleep=sleep,
    )


def renderer(**params: str) -> TemplateRenderer:
    return TemplateRenderer({"params": params, "incident": None, "run": {"id": 1}})


async def test_promql_action_on_a_real_series(prom: PrometheusClient, prom_stack: Stack) -> None:
    action = PromqlSpec.model_validate({"query": 'up{job="{{ params.job }}"}', "expect": {"value_eq": 1}}).build(
        renderer(job=JOB)
    )
    outcome = await action.execute(step(prom, 10.0))
    assert outcome.ok, outcome.summary
    assert f'job="{JOB}"' in outcome.output

    failing = PromqlSpec.model_validate({"query": UP, "expect": {"empty": True}}).build(renderer())
    outcome = await failing.execute(step(prom, 10.0))
    assert not outcome.ok
    assert outcome.summary.startswith("expected no samples, got 1 sample")


async def test_wait_until_sees_the_target_go_down_and_come_back(prom: PrometheusClient, prom_stack: Stack) -> None:
    """The condition becomes true only because what Prometheus scrapes changes while the step waits."""
    flipped: list[float] = []

    def flip_after_first_poll(down: bool) -> Sleep:
        """The step's sleep: the first time it is called (the first poll saw the old state), flip the target."""
        done = False

        async def sleep(seconds: float) -> None:
            nonlocal done
            if not done:
                await asyncio.to_thread(prom_stack.set_target_down, down)
                flipped.append(time.monotonic())
                done = True
            await asyncio.sleep(seconds)

        return sleep

    down = WaitUntilSpec.model_validate({"query": UP, "expect": {"value_eq": 0}, "interval": "200ms"})
    up = WaitUntilSpec.model_validate({"query": UP, "expect": {"value_eq": 1}, "interval": "200ms"})
    try:
        outcome = await down.build(renderer()).execute(step(prom, FLIP_TIMEOUT, flip_after_first_poll(True)))
        assert outcome.ok, outcome.summary
        assert outcome.data["polls"] >= 2  # the first poll saw it up
        outcome = await up.build(renderer()).execute(step(prom, FLIP_TIMEOUT, flip_after_first_poll(False)))
        assert outcome.ok, outcome.summary
        assert outcome.data["polls"] >= 2
    finally:
        prom_stack.set_target_down(False)
    assert len(flipped) == 2  # each wait saw the flip it caused (measured: ~1.0 s down, ~0.8 s up again)


async def test_wait_until_times_out_with_the_last_result(prom: PrometheusClient) -> None:
    never = WaitUntilSpec.model_validate({"query": UP, "expect": {"value_gte": 2}, "interval": "100ms"})
    started = time.monotonic()
    outcome = await never.build(renderer()).execute(step(prom, 0.45))
    assert not outcome.ok
    assert time.monotonic() - started < 2.0
    assert "did not hold within" in outcome.summary
    assert "expected every sample >= 2; 1 of 1 sample not:" in outcome.summary
