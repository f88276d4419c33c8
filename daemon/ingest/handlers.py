"""POST /webhook/alertmanager and POST /api/v2/alerts.

Both answer only after the alerts are durably committed. A refused body changes nothing: it is parsed and
checked whole before the first alert is applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from daemon.api import answers, keys
from daemon.api.routes import Answer, Body, Ok, Route
from daemon.config import IngestConfig
from daemon.errors import InvalidInput, Overloaded, RateLimited, RequestError, StoreUnavailable, TooLarge
from daemon.ingest import normalize
from daemon.model import IncomingAlert, Source
from daemon.notify.publish.config import MARK_LABEL
from integrations.alertmanager.payloads import WEBHOOK_VERSION, postable_alerts, webhook_payload

REJECT_REASONS = (
    "too_large",
    "invalid_json",
    "invalid_payload",
    "unsupported_version",
    "invalid_labels",
    "fingerprint_mismatch",
    "store_unavailable",
    "too_many_alerts",
    "limit_exceeded",
    "rate_limited",
    "queue_full",
)


async def read_body(request: web.Request) -> bytes:
    limit = request.app[keys.CONFIG].config.ingest.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("too_large", f"body of {request.content_length} bytes is over the {limit}-byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("too_large", f"body is over the {limit}-byte limit") from None


def validation_problem(exc: ValidationError) -> RequestError:
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidInput("invalid_json", f"body is not valid JSON: {errors[0]['msg']}")
    # An alert without labels at all is a labels problem; a label of the wrong type is a wrong type.
    missing_labels = all(e["type"] == "missing" and e["loc"][-1] == "labels" for e in errors)
    reason = "invalid_labels" if missing_labels else "invalid_payload"
    parts = []
    for e in errors[:3]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".") or "body"
        parts.append(f"{loc}: {e['msg']}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidInput(reason, "; ".join(parts) + more)


def _count_alerts(body: bytes) -> int:
    """How many alerts a refused body held, for the rejected counter; 1 when it cannot tell."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return 1
    if isinstance(data, dict) and isinstance(data.get("alerts"), list):
        return max(len(data["alerts"]), 1)
    if isinstance(data, list):
        return max(len(data), 1)
    return 1


def parse_webhook(
    body: bytes, limits: IngestConfig, now: float, lookup: normalize.Lookup = normalize.unknown_alert
) -> list[IncomingAlert]:
    """A webhook body as alerts, or the RequestError a direct request gets; `lookup` gives the alerts held
    (a follower holds none: it checks every fingerprint against its labels)."""
    try:
        payload = webhook_payload.validate_json(body)
    except ValidationError as exc:
        problem = validation_problem(exc)
        try:
            version = json.loads(body).get("version")
        except (ValueError, AttributeError, RecursionError):
            version = WEBHOOK_VERSION
        # A missing or other version is unsupported; a version that is not a string is a wrong type.
        if (version is None or isinstance(version, str)) and version != WEBHOOK_VERSION:
            raise InvalidInput("unsupported_version", f"webhook version {version!r}; itsmd reads version 4") from None
        raise problem from None
    return normalize.from_webhook(payload, lookup, now, limits)


def parse_postable(
    body: bytes, limits: IngestConfig, now: float, known: normalize.KnownLabels = normalize.unknown_labels
) -> list[IncomingAlert]:
    """A POST /api/v2/alerts body as alerts, or the RequestError a direct request gets."""
    try:
        alerts = postable_alerts.validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return normalize.from_postable(alerts, now, limits, known=known)


def _parse_webhook(body: bytes, request: web.Request) -> list[IncomingAlert]:
    pipeline = request.app[keys.PIPELINE]
    return parse_webhook(body, request.app[keys.CONFIG].config.ingest, pipeline.clock.now(), pipeline.alerts.held)


def _parse_postable(body: bytes, request: web.Request) -> list[IncomingAlert]:
    pipeline = request.app[keys.PIPELINE]
    limits = request.app[keys.CONFIG].config.ingest
    return parse_postable(body, limits, pipeline.clock.now(), pipeline.alerts.fingerprint_of)


Parser = Callable[[bytes, web.Request], list[IncomingAlert]]
LOOPED_BACK = "itsmd_alerts_looped_back_total"


def drop_own(alerts: list[IncomingAlert]) -> tuple[list[IncomingAlert], int]:
    """itsmd's own published states (an Alertmanager route sent them back): recognised by the publisher's
    label and left out, so a state never opens an incident about itself. (kept, how many were left out)."""
    kept = [a for a in alerts if MARK_LABEL not in a.labels]
    return kept, len(alerts) - len(kept)


def v2_sender(request: web.Request) -> str:
    """Who posted to /api/v2/alerts, by User-Agent, for the received counter (a bounded label set).

    Prometheus sends `Prometheus/<version>`. amtool 0.25 sets no User-Agent of its own, so Go's default
    `Go-http-client/1.1` counts as amtool: so would another Go program that sets none (Alertmanager and
    Grafana name themselves). Anything else is `other`.
    """
    agent = request.headers.get("User-Agent", "")
    if agent.startswith("Prometheus/"):
        return "prometheus"
    if agent.startswith(("amtool", "Go-http-client/")):
        return "amtool"
    return "other"


async def _ingest(request: web.Request, source: Source, parse: Parser, sender: str | None = None) -> web.Response:
    started = time.perf_counter()
    counters = request.app[keys.COUNTERS]
    body = b""
    try:
        limiter = request.app[keys.RATE_LIMITER]
        if limiter.enabled:
            wait = limiter.take(request.remote or "")
            if wait is not None:
                raise RateLimited(
                    "rate_limited", f"over {limiter.rate:g} requests/s from {request.remote}", retry_after=wait
                )
        body = await read_body(request)
        alerts, own = drop_own(parse(body, request))
        if own:
            counters.inc(LOOPED_BACK, (("source", (source.name or "").lower()),), own)
        await request.app[keys.PIPELINE].submit(alerts, source, sender)
    except RequestError as exc:
        counters.inc("itsmd_alerts_rejected_total", (("reason", exc.reason),), _count_alerts(body) if body else 1)
        raise
    except StoreUnavailable:
        counters.inc("itsmd_alerts_rejected_total", (("reason", "store_unavailable"),))
        raise
    except Overloaded:
        counters.inc("itsmd_alerts_rejected_total", (("reason", "queue_full"),), len(alerts))
        raise
    finally:
        request.app[keys.INGEST_DURATION].observe(time.perf_counter() - started)
    answer: dict[str, object] = {"status": "success", "accepted": len(alerts)}
    if own:
        answer["ignored_own"] = own
    return web.json_response(answer)


async def webhook_alertmanager(request: web.Request) -> web.Response:
    return await _ingest(request, Source.ALERTMANAGER, _parse_webhook)


async def post_alerts_v2(request: web.Request) -> web.Response:
    # Stored as the Prometheus path whoever sent it: the path decides how the alert expires.
    return await _ingest(request, Source.PROMETHEUS, _parse_postable, v2_sender(request))


INGEST_ANSWERS: dict[int, Answer] = {
    200: Ok("durably stored", answers.Accepted),
    400: "refused: the reason says why; nothing was stored",
    413: "body or alert count over the limit",
    429: "over the per-client rate; see Retry-After",
    503: "the store cannot commit now; retry after Retry-After",
}
ROUTES = [
    Route(
        "POST",
        "/webhook/alertmanager",
        webhook_alertmanager,
        "Alertmanager webhook, payload version 4",
        INGEST_ANSWERS,
        access="ingest",
        body=Body(webhook_payload),
        tags=("ingest",),
    ),
    Route(
        "POST",
        "/api/v2/alerts",
        post_alerts_v2,
        "Alerts as Prometheus posts them to an Alertmanager",
        INGEST_ANSWERS,
        access="ingest",
        body=Body(postable_alerts),
        tags=("ingest",),
    ),
]
