"""PrometheusClient against a real local HTTP server that answers as Prometheus 2.42 does (and as it fails)."""

from __future__ import annotations

import math
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from integrations.prometheus.client import PrometheusClient, PrometheusError, QueryResult, Sample
from tests.e2e.stack import free_ports
from tests.unit.integrations.upstream import Upstream

QUERY = "/api/v1/query"


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [1700000000.5, v]} for m, v in samples]},
    }


def client(upstream: Upstream, prefix: str = "", **kwargs: Any) -> PrometheusClient:
    return PrometheusClient(upstream.session, upstream.url(prefix), **kwargs)


async def test_vector_samples_keep_labels_and_special_values(upstream: Upstream) -> None:
    upstream.answer(
        "POST",
        QUERY,
        body=vector(({"job": "a"}, "1.5"), ({"job": "b"}, "NaN"), ({"job": "c"}, "+Inf"), ({"job": "d"}, "-Inf")),
    )
    result = await client(upstream).query('up{job=~".+"}')
    assert result.result_type == "vector"
    assert [s.labels["job"] for s in result.samples] == ["a", "b", "c", "d"]
    values = [s.value for s in result.samples]
    assert values[0] == 1.5
    assert math.isnan(values[1])
    assert values[2] == math.inf
    assert values[3] == -math.inf


async def test_scalar_is_one_sample_without_labels(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body={"status": "success", "data": {"resultType": "scalar", "result": [1, "42"]}})
    assert await client(upstream).query("42") == QueryResult("scalar", [Sample({}, 42.0)])


async def test_query_is_posted_form_encoded_with_time_timeout_and_token(upstream: Upstream) -> None:
    upstream.answer("POST", "/prom/api/v1/query", body=vector())
    prom = client(upstream, "/prom/", timeout=3.0, headers={"Authorization": "Bearer s3cret"})
    result = await prom.query("sum(rate(x[5m])) > 0", at=1700000000.25)
    assert result.samples == []
    (seen,) = upstream.requests
    assert (seen.method, seen.path) == ("POST", "/prom/api/v1/query")
    assert seen.form == {"query": "sum(rate(x[5m])) > 0", "time": "1700000000.250", "timeout": "3s"}
    assert seen.query == {}  # the query stays out of the URL (and out of access logs)
    assert seen.headers["Authorization"] == "Bearer s3cret"


async def test_post_refused_falls_back_to_get(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, 405, text="Method Not Allowed")
    upstream.answer("GET", QUERY, body=vector(({}, "1")))
    result = await client(upstream).query("vector(1)")
    assert [s.value for s in result.samples] == [1.0]
    assert [r.method for r in upstream.requests] == ["POST", "GET"]
    assert upstream.requests[1].query["query"] == "vector(1)"


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [(400, "bad_data", False), (422, "execution", False), (503, "timeout", True), (500, "internal", True)],
)
async def test_api_errors_carry_prometheus_text_and_retryability(
    upstream: Upstream, status: int, error_type: str, retryable: bool
) -> None:
    text = 'invalid parameter "query": 1:4: parse error: unexpected <EOF>'
    upstream.answer("POST", QUERY, status, {"status": "error", "errorType": error_type, "error": text})
    with pytest.raises(PrometheusError) as caught:
        await client(upstream).query("up{")
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    assert f"HTTP {status}: {error_type}: {text}" in str(caught.value)


async def test_proxy_overload_is_retryable(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, 429, text="slow down")
    with pytest.raises(PrometheusError) as caught:
        await client(upstream).query("up")
    assert caught.value.retryable
    assert "slow down" in str(caught.value)


async def test_timeout_is_retryable(upstream: Upstream) -> None:
    upstream.hang("POST", QUERY)
    with pytest.raises(PrometheusError) as caught:
        await client(upstream, timeout=0.1).query("up")
    assert caught.value.retryable
    assert "no answer within 0.1s" in str(caught.value)


async def test_connection_refused_is_retryable_and_hides_the_password() -> None:
    (port,) = free_ports(1)  # nobody listens there any more
    async with aiohttp.ClientSession() as session:
        prom = PrometheusClient(session, f"http://admin:hunter2@127.0.0.1:{port}/prom")
        with pytest.raises(PrometheusError) as caught:
            await prom.query("up")
    assert caught.value.retryable
    message = str(caught.value)
    assert "hunter2" not in message
    assert f"http://admin:xxxxx@127.0.0.1:{port}/prom/api/v1/query" in message
    assert "hunter2" not in prom.url


async def test_token_never_appears_in_errors(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, 400, {"status": "error", "errorType": "bad_data", "error": "nope"})
    with pytest.raises(PrometheusError) as caught:
        await client(upstream, headers={"Authorization": "Bearer s3cret"}).query("up")
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(caught.value)


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ("<html>login</html>", "answer is not JSON"),
        ('{"status": "success", "data": {"resultType": "matrix", "result": []}}', "range vector"),
        ('{"status": "success", "data": {"resultType": "string", "result": [1, "a"]}}', "unsupported result type"),
        ('{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}', "native histogram"),
        (
            '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]}}',
            "malformed",
        ),
        ('{"status": "success", "data": {"resultType": "scalar", "result": [1, "many"]}}', "malformed"),
        ('{"data": 1}', "not a successful Prometheus API answer"),
    ],
)
async def test_answers_that_are_not_usable_are_not_retried(upstream: Upstream, answer: str, fragment: str) -> None:
    upstream.answer("POST", QUERY, 200, text=answer)
    with pytest.raises(PrometheusError) as caught:
        await client(upstream).query("up")
    assert not caught.value.retryable
    assert fragment in str(caught.value)


async def test_redirects_are_not_followed(upstream: Upstream) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://elsewhere.example/api/v1/query?token=abc")

    upstream.handle("POST", QUERY, redirect)
    with pytest.raises(PrometheusError) as caught:
        await client(upstream, headers={"Authorization": "Bearer s3cret"}).query("up")
    assert not caught.value.retryable
    assert "redirect to http://elsewhere.example/api/v1/query;" in str(caught.value)
    assert "token=abc" not in str(caught.value)
    assert len(upstream.requests) == 1


async def test_oversized_answer_is_refused(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=vector(*[({"i": str(i)}, "1") for i in range(2000)]))
    with pytest.raises(PrometheusError) as caught:
        await client(upstream, max_response_bytes=10_000).query("up")
    assert not caught.value.retryable
    assert "larger than 10000 bytes" in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://host/", "localhost:9090", "http://host/?x=1"])
async def test_bad_base_urls_are_refused(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="URL"):
            PrometheusClient(session, url)


async def test_raw_samples_keep_their_own_timestamps(upstream: Upstream) -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"a": "b"}, "values": [[1700000000.25, "1"], [1700000001, "1"]]}],
        },
    }
    upstream.answer("POST", QUERY, body=body)
    [series] = await client(upstream, timeout=3.0).raw_samples('ALERTS{a="b"}', seconds=12.2, at=1700000002.0)
    assert series.labels == {"a": "b"}
    assert series.points == [(1700000000.25, 1.0), (1700000001.0, 1.0)]
    (seen,) = upstream.requests
    assert seen.form == {"query": 'ALERTS{a="b"}[13s]', "time": "1700000002.000", "timeout": "3s"}


async def test_raw_samples_refuse_an_answer_that_is_not_a_matrix(upstream: Upstream) -> None:
    upstream.answer("POST", QUERY, body=vector(({"a": "b"}, "1")))
    with pytest.raises(PrometheusError, match="not a matrix answer"):
        await client(upstream).raw_samples('ALERTS{a="b"}', seconds=10, at=1700000002.0)
