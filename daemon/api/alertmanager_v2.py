"""Alertmanager's v2 read API, so amtool, karma and Grafana's Alertmanager data source can read itsmd.

GET /api/v2/alerts, /api/v2/alerts/groups, /api/v2/status, /api/v2/receivers, /api/v2/silences and
/api/v2/silence/{silenceID}, answering the shapes of Alertmanager 0.25's OpenAPI document. Alerts come from
the alert table in memory (the firing ones: Alertmanager lists active alerts only); see am_alerts for what
itsmd adds to them. Silences are the configured Alertmanager's (`alertmanager:` in the config), read through
unchanged and marked by the `X-Itsmd-Read-Through` header; without that section there are none. These
endpoints are in the api_read auth group; POST /api/v2/alerts stays ingest.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.api import am_openapi as am
from daemon.api import keys
from daemon.api.am_alerts import AlertFilter, AlertView
from daemon.api.am_status import status_document
from daemon.api.principals import Role
from daemon.api.routes import Answer, Ok, Query, Route
from daemon.correlate.matchers import Matcher, match_all, parse_matcher
from daemon.errors import InvalidInput, NotFound, RequestError, Unavailable, UpstreamFailed
from integrations.alertmanager.client import AlertmanagerClient, AlertmanagerError, SilenceNotFound
from integrations.alertmanager.silences import SILENCE_ID

READ_THROUGH_HEADER = "X-Itsmd-Read-Through"
RETRY_AFTER_SECONDS = 5.0
# Go's strconv.ParseBool, which is what amtool's flags print and what people type.
_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


@dataclass
class Upstream:
    """The configured Alertmanager silences are read from, or None."""

    client: AlertmanagerClient | None = None


STARTED = web.AppKey("am_v2_started", float)
UPSTREAM = web.AppKey("am_v2_upstream", Upstream)


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "")
    if raw == "":
        return True  # Alertmanager's default for every flag
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput("invalid_query", f"{name} must be true or false, not {raw[:40]!r}")


def _matchers(request: web.Request) -> tuple[Matcher, ...]:
    out = []
    for text in request.query.getall("filter", []):
        try:
            out.append(parse_matcher(text))
        except ValueError as exc:
            raise InvalidInput("invalid_filter", f"filter: {exc}") from None
    return tuple(out)


def _receiver(request: web.Request) -> re.Pattern[str] | None:
    raw = request.query.get("receiver")
    if raw is None:
        return None
    try:
        return re.compile(f"(?:{raw})")  # matched whole, as Alertmanager anchors it
    except re.error as exc:
        raise InvalidInput("invalid_query", f"receiver: invalid regular expression: {exc}") from None


def _alert_filter(request: web.Request, *, unprocessed: bool = True) -> AlertFilter:
    return AlertFilter(
        active=_flag(request, "active"),
        silenced=_flag(request, "silenced"),
        inhibited=_flag(request, "inhibited"),
        unprocessed=_flag(request, "unprocessed") if unprocessed else True,
        matchers=_matchers(request),
        receiver=_receiver(request),
    )


def _view(request: web.Request) -> AlertView:
    pipeline = request.app[keys.PIPELINE]
    correlator = pipeline.correlator
    return AlertView(pipeline.alerts.firing(), correlator.get, correlator.service_of, pipeline.clock.now())


async def get_alerts(request: web.Request) -> web.Response:
    query = _alert_filter(request)
    return web.json_response(_view(request).alerts(query))


async def get_alert_groups(request: web.Request) -> web.Response:
    query = _alert_filter(request, unprocessed=False)
    return web.json_response(_view(request).groups(query))


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(status_document(request.app[keys.CONFIG].config, request.app[STARTED]))


async def get_receivers(request: web.Request) -> web.Response:
    services = request.app[keys.PIPELINE].correlator.ruleset.catalogue.names()
    return web.json_response(_view(request).receivers(services))


def _upstream_failed(exc: AlertmanagerError) -> RequestError:
    # The Alertmanager's trouble, not the client's: 502 when it answered wrongly, 503 when it could not be
    # reached in time (worth a retry).
    if exc.status is None:
        return Unavailable("alertmanager_unavailable", exc.message, retry_after=RETRY_AFTER_SECONDS)
    return UpstreamFailed("alertmanager_error", exc.message)


def _silence_matches(silence: dict[str, Any], matchers: Sequence[Matcher]) -> bool:
    """Alertmanager's filter of silences: the filter matchers against the silence's matcher values."""
    values = {
        m["name"]: m["value"]
        for m in silence.get("matchers") or []
        if isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("value"), str)
    }
    return match_all(matchers, values)


async def get_silences(request: web.Request) -> web.Response:
    matchers = _matchers(request)
    client = request.app[UPSTREAM].client
    if client is None:
        return web.json_response([])
    try:
        silences = await client.list_silences()
    except AlertmanagerError as exc:
        raise _upstream_failed(exc) from None
    shown = [s for s in silences if _silence_matches(s, matchers)]
    return web.json_response(shown, headers={READ_THROUGH_HEADER: client.url})


async def get_silence(request: web.Request) -> web.Response:
    silence_id = request.match_info["silenceID"]
    client = request.app[UPSTREAM].client
    if client is None or not SILENCE_ID.match(silence_id):
        raise NotFound("not_found", f"no silence {silence_id[:80]}")
    try:
        silence = await client.get_silence(silence_id)
    except SilenceNotFound:
        raise NotFound("not_found", f"no silence {silence_id} in {client.url}") from None
    except AlertmanagerError as exc:
        raise _upstream_failed(exc) from None
    return web.json_response(silence, headers={READ_THROUGH_HEADER: client.url})


async def _started(app: web.Application) -> None:
    app[STARTED] = app[keys.CLOCK].now()


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    """A session of its own for reading silences, so the runbook actions' session keeps its own limits."""
    cfg = app[keys.CONFIG].config.alertmanager
    if cfg is None:
        app[UPSTREAM] = Upstream()
        yield
        return
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0)) as session:
        app[UPSTREAM] = Upstream(cfg.client(session))
        yield


def setup(app: web.Application) -> None:
    """The reads' state: when the API started (their uptime) and the upstream Alertmanager's client."""
    app.on_startup.append(_started)
    app.cleanup_ctx.append(_upstream)


def _read(path: str, handler: Handler, summary: str, responses: dict[int, Answer], *query: Query) -> Route:
    return Route("GET", path, handler, summary, responses, role=Role.VIEWER, query=query, tags=("alertmanager",))


ROUTES = [
    _read(
        "/api/v2/alerts",
        get_alerts,
        "Alertmanager v2: the firing alerts, in Alertmanager's gettableAlert shape",
        {200: Ok("alerts", {"type": "array", "items": am.ALERT}), 400: am.BAD_QUERY},
        *am.FLAGS,
        am.UNPROCESSED,
        am.FILTER,
        am.RECEIVER_QUERY,
    ),
    _read(
        "/api/v2/alerts/groups",
        get_alert_groups,
        "Alertmanager v2: one alert group per incident with firing alerts",
        {200: Ok("alert groups", {"type": "array", "items": am.GROUP}), 400: am.BAD_QUERY},
        *am.FLAGS,
        am.FILTER,
        am.RECEIVER_QUERY,
    ),
    _read(
        "/api/v2/status",
        get_status,
        "Alertmanager v2: itsmd's version, start time and config without secrets",
        {200: Ok("status", am.STATUS)},
    ),
    _read(
        "/api/v2/receivers",
        get_receivers,
        "Alertmanager v2: the receivers alerts carry",
        {200: Ok("receivers", {"type": "array", "items": am.RECEIVER})},
    ),
    _read(
        "/api/v2/silences",
        get_silences,
        "Alertmanager v2: the configured Alertmanager's silences, read through (none without)",
        {200: Ok("silences", {"type": "array", "items": am.SILENCE}), 400: am.BAD_QUERY, **am.UPSTREAM},
        am.FILTER,
    ),
    _read(
        "/api/v2/silence/{silenceID}",
        get_silence,
        "Alertmanager v2: one silence of the configured Alertmanager",
        {
            200: Ok("the silence", am.SILENCE),
            404: "no such silence, or no Alertmanager configured",
            **am.UPSTREAM,
        },
    ),
]
