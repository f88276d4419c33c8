"""GET /api/v1/incidents[/{id}] and GET /api/v1/alerts[/{fingerprint}]: committed state, as JSON."""

from __future__ import annotations

from aiohttp import web

from daemon.api import keys
from daemon.errors import RequestError

INCIDENT_STATUSES = {"open": "open", "resolved": "resolved", "all": None}
ALERT_STATUSES = {"firing": "firing", "resolved": "resolved", "expired": "expired", "all": None}
MAX_LIMIT = 1000


def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "100"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise RequestError("invalid_query", "limit and offset must be whole numbers") from None
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise RequestError("invalid_query", f"limit must be 1..{MAX_LIMIT} and offset 0 or more")
    return limit, offset


def _status(request: web.Request, allowed: dict[str, str | None], default: str) -> str | None:
    value = request.query.get("status", default)
    if value not in allowed:
        raise RequestError("invalid_query", f"status must be one of {', '.join(allowed)}")
    return allowed[value]


async def list_incidents(request: web.Request) -> web.Response:
    status = _status(request, INCIDENT_STATUSES, "open")
    limit, offset = _page(request)
    incidents = await request.app[keys.READER].incidents(status, limit, offset)
    return web.json_response({"incidents": incidents})


async def get_incident(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    incident = await request.app[keys.READER].incident(int(raw)) if raw.isdigit() else None
    if incident is None:
        raise web.HTTPNotFound(text=f"no incident {raw}")
    return web.json_response(incident)


async def list_alerts(request: web.Request) -> web.Response:
    status = _status(request, ALERT_STATUSES, "all")
    limit, offset = _page(request)
    alerts = await request.app[keys.READER].alerts(status, limit, offset)
    return web.json_response({"alerts": alerts})


async def get_alert(request: web.Request) -> web.Response:
    fingerprint = request.match_info["fingerprint"]
    alert = await request.app[keys.READER].alert(fingerprint)
    if alert is None:
        raise web.HTTPNotFound(text=f"no alert {fingerprint}")
    return web.json_response(alert)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_get("/api/v1/alerts", list_alerts)
    app.router.add_get("/api/v1/alerts/{fingerprint}", get_alert)
