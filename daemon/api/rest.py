"""GET /api/v1/incidents[/{id}] and GET /api/v1/alerts[/{fingerprint}]: committed state, as JSON."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from daemon.api import answers, keys
from daemon.api.principals import Role, principal_of
from daemon.api.routes import Ok, Query, Route
from daemon.correlate.assignment import list_filter
from daemon.errors import InvalidInput, NotFound
from daemon.storage.timestamps import rfc3339

INCIDENT_STATUSES = {
    "active": "open,acknowledged",
    "open": "open",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
    "closed": "closed",
    "all": None,
}
ALERT_STATUSES = {"firing": "firing", "resolved": "resolved", "expired": "expired", "all": None}
MAX_LIMIT = 1000
MAX_OFFSET = 10**12
_WHOLE = re.compile(r"[0-9]{1,13}")
"""ASCII digits only (str.isdigit takes "²"), and few enough that SQLite's 64-bit integers hold them."""


def _whole(text: str) -> int | None:
    return int(text) if _WHOLE.fullmatch(text) else None


def _page(request: web.Request) -> tuple[int, int]:
    limit = _whole(request.query.get("limit", "100"))
    offset = _whole(request.query.get("offset", "0"))
    if limit is None or offset is None or not 1 <= limit <= MAX_LIMIT or offset > MAX_OFFSET:
        raise InvalidInput("invalid_query", f"limit must be a whole number 1..{MAX_LIMIT}, offset 0..{MAX_OFFSET}")
    return limit, offset


def _status(request: web.Request, allowed: dict[str, str | None], default: str) -> str | None:
    value = request.query.get("status", default)
    if value not in allowed:
        raise InvalidInput("invalid_query", f"status must be one of {', '.join(allowed)}")
    return allowed[value]


def live_sla(request: web.Request, incident: dict[str, Any]) -> dict[str, Any]:
    """The stored incident with the SLA clock's pause as it stands now: a maintenance window pauses the
    clock without any change to the record, so only the running correlator can say so."""
    if incident["status"] in ("open", "acknowledged"):
        pipeline = request.app[keys.PIPELINE]
        by = pipeline.correlator.sla_paused_by(incident["id"], pipeline.clock.now()) or incident["sla"]["paused_by"]
        incident["sla"].update(paused=by is not None, paused_by=by)
    return incident


async def list_incidents(request: web.Request) -> web.Response:
    status = _status(request, INCIDENT_STATUSES, "active")
    limit, offset = _page(request)
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    q = request.query
    who = list_filter(q.get("assignee", ""), q.get("team", ""), principal_of(request).name, catalogue)
    incidents = await request.app[keys.READER].incidents(status, limit, offset, who)
    return web.json_response({"incidents": [live_sla(request, i) for i in incidents]})


async def get_incident(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    incident_id = _whole(raw)
    incident = await request.app[keys.READER].incident(incident_id) if incident_id is not None else None
    if incident is None:
        raise NotFound("not_found", f"no incident {raw}")
    return web.json_response(live_sla(request, incident))


def live_seen(request: web.Request, alert: dict[str, Any]) -> dict[str, Any]:
    """The stored alert with the last-seen data the alert table holds: re-sends reach disk only after a delay
    (SEEN_WRITE_DELAY in daemon/alerts/table.py)."""
    held = request.app[keys.PIPELINE].alerts.get(alert["fingerprint"])
    if held is not None:
        alert.update(last_seen=rfc3339(held.last_seen), times_seen=held.times_seen)
    return alert


async def list_alerts(request: web.Request) -> web.Response:
    status = _status(request, ALERT_STATUSES, "all")
    limit, offset = _page(request)
    alerts = await request.app[keys.READER].alerts(status, limit, offset)
    correlator = request.app[keys.PIPELINE].correlator
    for alert in alerts:
        live_seen(request, alert)
        alert["flapping"] = correlator.is_flapping(alert["fingerprint"])
    return web.json_response({"alerts": alerts})


async def get_alert(request: web.Request) -> web.Response:
    fingerprint = request.match_info["fingerprint"]
    alert = await request.app[keys.READER].alert(fingerprint)
    if alert is None:
        raise NotFound("not_found", f"no alert {fingerprint}")
    live_seen(request, alert)
    alert["flapping"] = request.app[keys.PIPELINE].correlator.is_flapping(fingerprint)
    return web.json_response(alert)


PAGING = (
    Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}, "page size"),
    Query("offset", {"type": "integer", "minimum": 0, "default": 0}, "rows to skip"),
)
BAD_QUERY = "bad query: the error names the parameter"
ROUTES = [
    Route(
        "GET",
        "/api/v1/incidents",
        list_incidents,
        "Incidents, newest first",
        {200: Ok("incidents", answers.Incidents), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(
            Query(
                "status", {"enum": [*INCIDENT_STATUSES], "default": "active"}, "filter (active: open and acknowledged)"
            ),
            Query("assignee", {"type": "string"}, "a principal's name, me (the caller) or none (unassigned)"),
            Query("team", {"type": "string"}, "the team the incident is with"),
            *PAGING,
        ),
        tags=("incidents",),
    ),
    Route(
        "GET",
        "/api/v1/incidents/{id}",
        get_incident,
        "One incident with its alerts and timeline",
        {200: Ok("the incident", answers.IncidentDetail), 404: "no such incident"},
        role=Role.VIEWER,
        tags=("incidents",),
    ),
    Route(
        "GET",
        "/api/v1/alerts",
        list_alerts,
        "Alerts",
        {200: Ok("alerts", answers.Alerts), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(Query("status", {"enum": [*ALERT_STATUSES], "default": "all"}, "filter"), *PAGING),
        tags=("alerts",),
    ),
    Route(
        "GET",
        "/api/v1/alerts/{fingerprint}",
        get_alert,
        "One alert",
        {200: Ok("the alert", answers.Alert), 404: "no such alert"},
        role=Role.VIEWER,
        tags=("alerts",),
    ),
]
