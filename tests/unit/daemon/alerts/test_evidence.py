"""The end of an expired alert from Prometheus' ALERTS series, against a real local server answering as
Prometheus does; label values escaped, failures and slowness falling back to last-seen with the reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from daemon.alerts.evidence import LAST_SEEN, PROMETHEUS, PrometheusEnds
from daemon.model import Alert, AlertStatus, Source
from integrations.prometheus.client import PrometheusClient, promql_string, selector
from tests.unit.daemon.ingest.conftest import eventually
from tests.unit.integrations.upstream import Upstream, serving

T0 = 1_800_000_000.0
QUERY = "/api/v1/query"
LABELS = {"alertname": "ApiDown", "service": "api", "note": 'say "hi"\\ then\nbye"}'}


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as server:
        yield server


def alert(labels: dict[str, str] | None = None) -> Alert:
    return Alert(
        fingerprint="f1",
        labels=labels or dict(LABELS),
        annotations={},
        status=AlertStatus.FIRING,
        starts_at=T0,
        ends_at=None,
        generator_url="",
        sources=Source.ALERTMANAGER,
        first_seen=T0,
        last_seen=T0 + 600,
    )


def matrix(*series: tuple[dict[str, str], list[float]]) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": [[t, "1"] for t in times]} for m, times in series],
        },
    }


def finder(upstream: Upstream, timeout: float = 2.0) -> PrometheusEnds:
    return PrometheusEnds(PrometheusClient(upstream.session, upstream.url(), timeout=timeout), timeout=timeout)


def own_series() -> dict[str, str]:
    return {**LABELS, "alertstate": "firing", "__name__": "ALERTS"}


def test_label_values_are_escaped_as_promql_strings() -> None:
    value = 'a"b\\c\nd\x00e}{,=~ "'
    # PromQL reads Go escapes; JSON's \\ \" \uXXXX are a subset, so JSON can check the round trip.
    assert json.loads(f'"{promql_string(value)}"') == value
    assert selector("ALERTS", {"x": 'q"} or vector(1) #'}) == 'ALERTS{x="q\\"} or vector(1) #"}'
    with pytest.raises(ValueError, match="label name"):
        selector("ALERTS", {'x"}': "v"})


async def test_end_is_the_last_firing_sample_after_last_seen(upstream: Upstream) -> None:
    other = {**own_series(), "instance": "b"}  # a series with more labels also matches the selector
    samples = (own_series(), [T0 + 585, T0 + 600, T0 + 615, T0 + 630])
    upstream.answer("POST", QUERY, body=matrix(samples, (other, [T0 + 9000])))
    ends = await finder(upstream).ends([alert()], T0 + 20000)
    assert ends["f1"].at == T0 + 630
    assert ends["f1"].source == PROMETHEUS
    (seen,) = [r for r in upstream.requests if r.path == QUERY]
    query = seen.form["query"]
    assert query.startswith("ALERTS{")
    assert query.endswith("}[19400s]")  # the whole time since the alert was last seen
    assert 'note="say \\"hi\\"\\\\ then\\u000abye\\"}"' in query
    assert 'alertstate="firing"' in query
    assert seen.form["time"] == f"{T0 + 20000:.3f}"


async def test_no_sample_after_last_seen_means_last_seen(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=matrix((own_series(), [T0 + 500, T0 + 600])))
    ends = await finder(upstream).ends([alert()], T0 + 20000)
    assert (ends["f1"].at, ends["f1"].source) == (T0 + 600, LAST_SEEN)
    assert ends["f1"].note == "Prometheus has no firing ALERTS sample after the alert was last seen"


async def test_a_failing_prometheus_means_last_seen_with_the_reason(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, status=503, body={"status": "error", "error": "overloaded"})
    ends = await finder(upstream).ends([alert()], T0 + 20000)
    assert (ends["f1"].at, ends["f1"].source) == (T0 + 600, LAST_SEEN)
    assert ends["f1"].note is not None and ends["f1"].note.startswith("Prometheus failed:")
    assert "overloaded" in ends["f1"].note


async def test_a_silent_prometheus_is_given_up_on_after_the_timeout(upstream: Upstream) -> None:
    upstream.hang("POST", QUERY)
    started = asyncio.get_running_loop().time()
    ends = await finder(upstream, timeout=0.3).ends([alert()], T0 + 20000)
    assert asyncio.get_running_loop().time() - started < 2.0
    assert (ends["f1"].at, ends["f1"].source) == (T0 + 600, LAST_SEEN)
    assert ends["f1"].note is not None


async def test_labels_prometheus_adds_on_sending_are_not_matched(upstream: Upstream) -> None:
    config = "global:\n  external_labels:\n    cluster: eu1\n    replica: a\n"
    upstream.answer("GET", "/api/v1/status/config", body={"status": "success", "data": {"yaml": config}})
    # The alert as Alertmanager sends it: with the external label cluster, and a replica label of its own.
    sent = alert({**LABELS, "cluster": "eu1", "replica": "own"})
    upstream.answer("POST", QUERY, body=matrix(({**own_series(), "replica": "own"}, [T0 + 700])))
    ends = await finder(upstream).ends([sent], T0 + 20000)
    assert (ends["f1"].at, ends["f1"].source) == (T0 + 700, PROMETHEUS)
    query = next(r for r in upstream.requests if r.method == "POST").form["query"]
    assert "cluster=" not in query
    assert 'replica="own"' in query


async def test_a_cancelled_sweep_leaves_no_query_running(upstream: Upstream) -> None:
    upstream.hang("POST", QUERY)
    job = asyncio.ensure_future(finder(upstream, timeout=30.0).ends([alert()], T0 + 20000))

    async def asked() -> bool:
        return any(r.path == QUERY for r in upstream.requests)

    def queries() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if "PrometheusEnds" in getattr(t.get_coro(), "__qualname__", "")]

    await eventually(asked)
    assert queries()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job

    async def none_left() -> bool:
        return not queries()

    await eventually(none_left)
