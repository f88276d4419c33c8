"""Instant queries against the real Prometheus 2.42: the client, then the promql and wait_until actions.

The module starts its own stack (target, Alertmanager, Prometheus, itsmd), because it flips the flappy target
and the session-wide stack's alert lifecycle test must not see those outages.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

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
async def prom(prom_stack: Stack) -> AsyncIterator[PrometheusClient]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusClient(session, prom_stack.prom_url, timeout=5.0)


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
