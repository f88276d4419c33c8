"""GET /api/v1/changes[/{id}]: the change records, as committed, with their audit events and linked incidents."""

from __future__ import annotations

from aiohttp import web

from daemon.api import answers, keys
from daemon.api.principals import Role
from daemon.api.rest import BAD_QUERY, PAGING, _page, _whole
from daemon.api.routes import Ok, Query, Route
from daemon.changes.model import ChangeOutcome
from daemon.errors import InvalidInput, NotFound
from daemon.storage import changes as store

CHANGE_STATUSES = ("all", "open", "closed")
MAX_SERVICE = 256


async def list_changes(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    status = request.query.get("status", "all")
    if status not in CHANGE_STATUSES:
        raise InvalidInput("invalid_query", f"status must be one of {', '.join(CHANGE_STATUSES)}")
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in set(ChangeOutcome):
        raise InvalidInput("invalid_query", f"outcome must be one of {', '.join(ChangeOutcome)}")
    if status == "open" and outcome is not None:
        raise InvalidInput("invalid_query", "an open change has no outcome yet; drop status=open or outcome")
    service = request.query.get("service")
    if service is not None and not 0 < len(service) <= MAX_SERVICE:
        raise InvalidInput("invalid_query", f"service must be 1..{MAX_SERVICE} characters")
    changes = await request.app[keys.READER].run(
        lambda sql: store.list_changes(sql, service=service, outcome=outcome, state=status, limit=limit, offset=offset)
    )
    return web.json_response({"changes": changes})


async def get_change(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    change_id = _whole(raw)
    change = await request.app[keys.READER].run(store.get_change, change_id) if change_id is not None else None
    if change is None:
        raise NotFound("not_found", f"no change {raw}")
    return web.json_response(change)


ROUTES = [
    Route(
        "GET",
        "/api/v1/changes",
        list_changes,
        "Change records, newest first",
        {200: Ok("changes", answers.Changes), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(
            Query("status", {"enum": [*CHANGE_STATUSES], "default": "all"}, "open: no outcome yet"),
            Query("outcome", {"enum": [o.value for o in ChangeOutcome]}, "filter"),
            Query("service", {"type": "string"}, "filter"),
            *PAGING,
        ),
        tags=("changes",),
    ),
    Route(
        "GET",
        "/api/v1/changes/{id}",
        get_change,
        "One change with its audit events and the incidents linked to it",
        {200: Ok("the change", answers.ChangeDetail), 404: "no such change"},
        role=Role.VIEWER,
        tags=("changes",),
    ),
]
