"""The console's change pages: the change records (by state, outcome and service) and one change, with its
run, incident, suspected incidents and audit trail. Read-only: a change moves with its run."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.api import keys
from daemon.changes.model import ChangeOutcome
from daemon.console.auth import require_session
from daemon.console.record_views import change_row, when
from daemon.console.render import page
from daemon.storage import changes as store
from daemon.storage.sql import Sql

PAGE_SIZE = 100
STATES = ("all", "open", "closed")
MAX_SERVICE = 256


async def list_changes(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    q = request.query
    notes: list[str] = []
    state = q.get("status", "all")
    if state not in STATES:
        notes.append(f"status {state[:40]!r} is not one of {', '.join(STATES)}")
        state = "all"
    outcome: str | None = q.get("outcome", "") or None
    if outcome is not None and outcome not in set(ChangeOutcome):
        notes.append(f"outcome {outcome[:40]!r} is not one of {', '.join(ChangeOutcome)}")
        outcome = None
    if state == "open" and outcome is not None:
        notes.append("an open change has no outcome yet: the outcome filter is ignored")
        outcome = None
    service = q.get("service", "")[:MAX_SERVICE] or None

    def read(sql: Sql) -> list[dict[str, Any]]:
        return store.list_changes(sql, service=service, outcome=outcome, state=state, limit=PAGE_SIZE, offset=0)

    found = await request.app[keys.READER].run(read)
    return page(
        request,
        "changes.html.j2",
        session,
        title="Changes",
        changes=[change_row(c) for c in found],
        form={"status": state, "outcome": outcome or "", "service": service or ""},
        notes=notes,
        states=STATES,
        outcomes=[o.value for o in ChangeOutcome],
        services=request.app[keys.PIPELINE].correlator.ruleset.catalogue.names(),
    )


async def show_change(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
        raise web.HTTPNotFound(text=f"no change {raw}")
    found = await request.app[keys.READER].run(store.get_change, int(raw))
    if found is None:
        raise web.HTTPNotFound(text=f"no change {raw}")
    approval = found.get("approval")
    return page(
        request,
        "change.html.j2",
        session,
        title=f"Change {found['id']}",
        change={**change_row(found), "reason": found.get("reason") or "", "started": when(found.get("started_at"))},
        approval=None
        if approval is None
        else {**approval, "at": when(approval.get("at")), "on_behalf_of": approval.get("on_behalf_of")},
        suspected=[{**s, "at": when(s.get("at"))} for s in found.get("suspected_incidents", [])],
        events=[
            {"at": when(e.get("at")), "kind": e.get("kind"), "detail": sorted((e.get("detail") or {}).items())}
            for e in found.get("events", [])
        ],
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/changes", list_changes)
    app.router.add_get("/changes/{id}", show_change)
