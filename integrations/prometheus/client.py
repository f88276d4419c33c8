"""Instant queries against Prometheus' HTTP API (``/api/v1/query``), for runbook checks and for the raw
samples of a range selector (when an expired alert was last seen firing).

The query is POSTed form-encoded (long queries stay out of URLs and access logs); a server or proxy that
answers 405 or 501 to POST gets the same query as a GET, as Prometheus' own Go client does. The ``timeout``
parameter is sent too, so Prometheus stops evaluating when the caller stops waiting.

Sample values keep Prometheus' special values: "NaN", "+Inf" and "-Inf" become float nan/inf.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yaml

from integrations.prometheus.httpjson import DEFAULT_MAX_RESPONSE_BYTES, JsonApi, UpstreamError, endpoint, redact_url

QUERY_PATH = "api/v1/query"
CONFIG_PATH = "api/v1/status/config"
_POST_REFUSED = (405, 501)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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


@dataclass(frozen=True, slots=True)
class Series:
    """The raw samples of one series in a range: (Unix time, value), oldest first."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


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
        method, answer = await self._ask(params)
        return self._result(method, answer)

    async def _ask(self, params: dict[str, str]) -> tuple[str, Any]:
        """POST the query (GET when POST is refused); the method used and the decoded answer."""
        status, body = await self._api.call("POST", QUERY_PATH, form=params)
        method = "POST"
        if status in _POST_REFUSED:
            method = "GET"
            status, body = await self._api.call("GET", QUERY_PATH, query=params)
        if not 200 <= status < 300:
            raise self._api.refused(method, QUERY_PATH, status, body)
        return method, self._api.decode(method, QUERY_PATH, status, body)

    async def raw_samples(self, selector: str, *, seconds: float, at: float) -> list[Series]:
        """The stored samples of ``selector`` in the ``seconds`` before ``at`` (the range is left-open), with
        their own timestamps: an instant query of ``selector[Ns]``. ``selector`` is a series selector the
        caller built with escaped values (see :func:`selector`)."""
        window = max(1, math.ceil(seconds))
        params = {"query": f"{selector}[{window}s]", "timeout": f"{self._api.timeout:g}s", "time": f"{at:.3f}"}
        method, answer = await self._ask(params)
        what = self._api.describe(method, endpoint(self._api.base, QUERY_PATH))
        data = answer.get("data") if isinstance(answer, dict) and answer.get("status") == "success" else None
        if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise PrometheusError(f"{what}: not a matrix answer: {str(answer)[:200]}", False)
        try:
            return [_series(item) for item in data["result"]]
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise PrometheusError(f"{what}: malformed matrix result: {exc}", False) from None

    async def external_labels(self) -> dict[str, str]:
        """``global.external_labels`` of the server's loaded configuration (``/api/v1/status/config``): the
        labels Prometheus adds to the alerts it sends, which its own ALERTS series do not carry."""
        status, body = await self._api.call("GET", CONFIG_PATH)
        if not 200 <= status < 300:
            raise self._api.refused("GET", CONFIG_PATH, status, body)
        answer = self._api.decode("GET", CONFIG_PATH, status, body)
        what = self._api.describe("GET", endpoint(self._api.base, CONFIG_PATH))
        data = answer.get("data") if isinstance(answer, dict) and answer.get("status") == "success" else None
        if not isinstance(data, dict) or not isinstance(data.get("yaml"), str):
            raise PrometheusError(f"{what}: not a configuration answer: {str(answer)[:200]}", False)
        try:
            config = yaml.safe_load(data["yaml"])
        except yaml.YAMLError as exc:
            raise PrometheusError(f"{what}: the configuration is not YAML: {exc}", False) from None
        found = (config.get("global") or {}).get("external_labels") if isinstance(config, dict) else None
        if not isinstance(found, dict):
            return {}
        return {str(k): str(v) for k, v in found.items()}

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


def selector(metric: str, matchers: Mapping[str, str]) -> str:
    """``metric{name="value",...}`` with every value escaped as a PromQL string: label values are data
    (they come from alerts) and must never become query syntax. Names must be Prometheus label names."""
    parts = []
    for name, value in matchers.items():
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a Prometheus label name")
        parts.append(f'{name}="{promql_string(value)}"')
    return f"{metric}{{{','.join(parts)}}}"


def promql_string(value: str) -> str:
    """The inside of a double-quoted PromQL string that reads back as exactly ``value``: backslash, quote
    and every control character escaped (PromQL takes Go's escapes; ``\\u00XX`` covers control bytes)."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _series(item: Any) -> Series:
    labels = item["metric"]
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise TypeError("labels are not a string map")
    points = []
    for pair in item.get("values") or []:
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int | float):
            raise TypeError(f"expected [time, value], got {str(pair)[:80]}")
        points.append((float(pair[0]), _value(pair)))
    return Series(dict(labels), points)


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
