"""Instant queries against Prometheus' HTTP API (``/api/v1/query``), for runbook checks.

The query is POSTed form-encoded (long queries stay out of URLs and access logs); a server or proxy that
answers 405 or 501 to POST gets the same query as a GET, as Prometheus' own Go client does. The ``timeout``
parameter is sent too, so Prometheus stops evaluating when the caller stops waiting.

Sample values keep Prometheus' special values: "NaN", "+Inf" and "-Inf" become float nan/inf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from integrations.prometheus.httpjson import DEFAULT_MAX_RESPONSE_BYTES, JsonApi, UpstreamError, endpoint, redact_url

QUERY_PATH = "api/v1/query"
_POST_REFUSED = (405, 501)


class PrometheusError(UpstreamError):
    """A query failed; ``retryable`` says whether asking again later may help."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class QueryResult:
    result_type: str
    """``vector`` or ``scalar`` (a scalar is one sample without labels)."""
    samples: list[Sample]
    warnings: list[str] = field(default_factory=list)


class PrometheusClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._api = JsonApi(
            session,
            base_url,
            name="Prometheus",
            error=PrometheusError,
            timeout=timeout,
            headers=headers,
            max_response_bytes=max_response_bytes,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._api.session

    @property
    def url(self) -> str:
        """The base URL, safe to show."""
        return redact_url(self._api.base)

    async def query(self, promql: str, *, at: float | None = None) -> QueryResult:
        """Evaluate ``promql`` at ``at`` (Unix seconds; default: Prometheus' now)."""
        if not promql.strip():
            raise PrometheusError("the query is empty", False)
        params = {"query": promql, "timeout": f"{self._api.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, body = await self._api.call("POST", QUERY_PATH, form=params)
        method = "POST"
        if status in _POST_REFUSED:
            method = "GET"
            status, body = await self._api.call("GET", QUERY_PATH, query=params)
        if not 200 <= status < 300:
            raise self._api.refused(method, QUERY_PATH, status, body)
        return self._result(method, self._api.decode(method, QUERY_PATH, status, body))

    def _result(self, method: str, answer: Any) -> QueryResult:
        what = self._api.describe(method, endpoint(self._api.base, QUERY_PATH))
        if (
            not isinstance(answer, dict)
            or answer.get("status") != "success"
            or not isinstance(answer.get("data"), dict)
        ):
            raise PrometheusError(f"{what}: not a successful Prometheus API answer: {str(answer)[:200]}", False)
        data: dict[str, Any] = answer["data"]
        result_type, result = data.get("resultType"), data.get("result")
        warnings = [str(w) for w in answer.get("warnings") or [] if isinstance(w, str)]
        try:
            if result_type == "vector" and isinstance(result, list):
                return QueryResult("vector", [_vector_sample(item) for item in result], warnings)
            if result_type == "scalar":
                return QueryResult("scalar", [Sample({}, _value(result))], warnings)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise PrometheusError(f"{what}: malformed {result_type} result: {exc}", False) from None
        if result_type == "matrix":
            raise PrometheusError(
                f"{what}: the query returns a range vector; a check needs an instant vector or a scalar "
                "(wrap the range in a function such as max_over_time(...))",
                False,
            )
        raise PrometheusError(f"{what}: unsupported result type {result_type!r}; use a vector or scalar query", False)


def _vector_sample(item: Any) -> Sample:
    if "value" not in item:  # native histograms come as "histogram"
        raise ValueError("a sample without a float value (a native histogram?); use histogram_quantile or sum")
    labels = item["metric"]
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise TypeError("labels are not a string map")
    return Sample(dict(labels), _value(item["value"]))


def _value(pair: Any) -> float:
    """``[<unix time>, "<value>"]``; the value is a string so that NaN and infinities survive JSON."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise TypeError(f'expected [time, "value"], got {str(pair)[:80]}')
    return float(pair[1])  # accepts "NaN", "+Inf", "-Inf" and Go's exponent forms
