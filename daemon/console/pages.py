"""The console's incident pages: the list (filters, counts, bulk actions) and one incident (and its actions,
assignment among them).

Reads are the committed state through the daemon's Reader, the same as the API; changes go through the module
that owns the record (the correlator) and answer once durable, the same as the API. A form post answers with a
redirect back to the page (so a reload does not post again) and a message shown once; a script's post (the
keyboard shortcuts) gets JSON.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from daemon.api import keys
from daemon.api.errors import status_of
from daemon.console.auth import require_session, require_write
from daemon.console.render import page
from daemon.console.session import Session
from daemon.console.views import incident_row, incident_view, sla_view
from daemon.correlate import assignment
from daemon.correlate.incidents import allowed_actions
from daemon.correlate.matchers import parse_matcher
from daemon.errors import InvalidInput, NotFound, RequestError
from daemon.model import IncidentStatus
from daemon.storage.incident_search import SORTS, STATUSES, IncidentQuery, search_incidents

PAGE_SIZE = 50
MAX_TEXT = 200
STATUS_FILTERS = {"active": ("open", "acknowledged"), **{s: (s,) for s in STATUSES}, "all": ()}
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
BULK_ACTIONS = ("acknowledge", "resolve")
ACTIONS = ("acknowledge", "resolve", "close", "reopen")


def _query(request: web.Request, caller: str) -> tuple[IncidentQuery, dict[str, Any], list[str]]:
    """The list's filters from the query string; problems are shown, not raised (a typo in a matcher must not
    lose the page). The assignee filter takes `me` (the session's principal) and `none` (nobody) as the API
    does; "my team" is the team filter."""
    q = request.query
    problems: list[str] = []
    status = q.get("status", "active")
    if status not in STATUS_FILTERS:
        problems.append(f"status {status!r} is not one of {', '.join(STATUS_FILTERS)}")
        status = "active"
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    service = q.get("service", "")
    services = (service,) if service else None
    team = q.get("team", "")[:MAX_TEXT]
    assignee = q.get("assignee", "")[:MAX_TEXT]
    try:
        who = assignment.list_filter(assignee, team, caller, catalogue)
    except RequestError as exc:
        problems.append(exc.message)
        who, assignee, team = assignment.list_filter("", "", caller, catalogue), "", ""
    priorities = tuple(p for p in q.getall("priority", []) if p in PRIORITIES)
    flapping = {"yes": True, "no": False}.get(q.get("flapping", ""))
    text = q.get("q", "")[:MAX_TEXT]
    matchers = []
    for raw in q.get("match", "").split(","):
        if raw.strip():
            try:
                matchers.append(parse_matcher(raw.strip()))
            except ValueError as exc:
                problems.append(f"matcher: {exc}")
    sort = q.get("sort", "newest")
    if sort not in SORTS:
        sort = "newest"
    try:
        page_no = max(1, min(int(q.get("page", "1")), 10**6))
    except ValueError:
        page_no = 1
    query = IncidentQuery(
        statuses=STATUS_FILTERS[status],
        services=services,
        assignment=who,
        priorities=priorities,
        flapping=flapping,
        text=text,
        matchers=tuple(matchers),
        sort=sort,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    form = {
        "status": status,
        "service": service,
        "team": team,
        "assignee": assignee,
        "priority": list(priorities),
        "flapping": q.get("flapping", ""),
        "q": text,
        "match": q.get("match", "")[:1000],
        "sort": sort,
        "page": page_no,
    }
    return query, form, problems


def _link(form: dict[str, Any], **changes: Any) -> str:
    merged = {**form, **changes}
    pairs: list[tuple[str, str]] = []
    for name, value in merged.items():
        if isinstance(value, list):
            pairs.extend((name, str(v)) for v in value)
        elif value not in ("", None) and not (name == "page" and value == 1):
            pairs.append((name, str(value)))
    return "/incidents" + (f"?{urlencode(pairs)}" if pairs else "")


async def list_incidents(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    query, form, problems = _query(request, session.principal.name)
    found = await request.app[keys.READER].run(search_incidents, query)
    assignees = found.assignees
    if form["assignee"] not in ("", assignment.ME, assignment.NOBODY, *assignees):
        assignees = sorted([*assignees, form["assignee"]])
    now = request.app[keys.CLOCK].now()
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    pages = max(1, -(-found.total // PAGE_SIZE))
    return page(
        request,
        "incidents.html.j2",
        session,
        title="Incidents",
        incidents=[{**incident_row(i, now), "assignee": i.get("assignee")} for i in found.incidents],
        total=found.total,
        by_status=found.by_status,
        active_count=found.by_status["open"] + found.by_status["acknowledged"],
        form=form,
        problems=problems,
        services=catalogue.names(),
        teams=assignment.teams(catalogue),
        assignees=assignees,
        priorities=PRIORITIES,
        sorts=list(SORTS),
        status_links={s: _link(form, status=s, page=1) for s in STATUS_FILTERS},
        prev_link=_link(form, page=form["page"] - 1) if form["page"] > 1 else None,
        next_link=_link(form, page=form["page"] + 1) if form["page"] < pages else None,
        page_no=form["page"],
        pages=pages,
        here=_link(form),
        can_act=session.principal.may("responder"),
    )


def _incident_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
        raise web.HTTPNotFound(text=f"no incident {raw}")
    return int(raw)


async def show_incident(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    incident_id = _incident_id(request)
    found = await request.app[keys.READER].incident(incident_id)
    if found is None:
        raise web.HTTPNotFound(text=f"no incident {incident_id}")
    now = request.app[keys.CLOCK].now()
    status = IncidentStatus(found["status"])
    works = session.principal.may("responder") and status is not IncidentStatus.CLOSED
    return page(
        request,
        "incident.html.j2",
        session,
        title=f"#{incident_id} {found['title']}",
        incident={**incident_view(found, now), "assignee": found.get("assignee"), "team": found.get("team")},
        sla=sla_view(found, now),
        allowed=allowed_actions(status) if session.principal.may("responder") else [],
        can_note=works,
        can_assign=works,
        teams=assignment.teams(request.app[keys.PIPELINE].correlator.ruleset.catalogue),
        firing=any(a["status"] == "firing" for a in found.get("alerts", [])),
    )


async def act_on_incident(request: web.Request) -> web.StreamResponse:
    session, form = await require_write(request, "responder")
    incident_id = _incident_id(request)
    action = str(form.get("action", ""))
    reason = str(form.get("reason", ""))[:4000]
    back = f"/incidents/{incident_id}"
    pipeline = request.app[keys.PIPELINE]
    now = pipeline.clock.now()
    by = session.principal.name
    try:
        if action == "note":
            text = str(form.get("text", "")).strip()[:16000]
            if not text:
                raise InvalidInput("invalid_body", "a note needs text")
            if not pipeline.correlator.add_note(incident_id, now, by, text):
                raise NotFound("not_found", f"incident {incident_id} is closed or unknown")
            message = "note added"
        elif action in ("assign", "unassign"):
            message = _assign(request, session, incident_id, action, form)
        elif action in ACTIONS:
            force = action == "resolve" and form.get("force") == "on"
            pipeline.correlator.act(incident_id, action, now, by, reason, force=force)
            message = f"incident {incident_id} {_past(action)}"
        else:
            raise InvalidInput("invalid_body", f"unknown action {action!r}")
    except RequestError as exc:
        return _answer(request, session, back, exc.message, ok=False, status=status_of(exc))
    await _durable(request)
    return _answer(request, session, back, message, ok=True)


async def bulk(request: web.Request) -> web.StreamResponse:
    session, form = await require_write(request, "responder")
    action = str(form.get("action", ""))
    back = str(form.get("back", "/incidents"))
    if not back.startswith("/incidents"):
        back = "/incidents"
    if action not in BULK_ACTIONS:
        return _answer(request, session, back, f"unknown bulk action {action!r}", ok=False, status=400)
    ids: list[int] = []
    for raw in form.getall("id", []) if hasattr(form, "getall") else []:
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 13:
            ids.append(int(raw))
    if not ids:
        return _answer(request, session, back, "select incidents first", ok=False, status=400)
    pipeline = request.app[keys.PIPELINE]
    now = pipeline.clock.now()
    done: list[int] = []
    refused: list[str] = []
    force = form.get("force") == "on"
    for incident_id in ids[:500]:
        try:
            pipeline.correlator.act(incident_id, action, now, session.principal.name, "bulk", force=force)
            done.append(incident_id)
        except RequestError as exc:
            refused.append(exc.message)
    if done:
        await _durable(request)
    message = f"{len(done)} {_past(action)}"
    if refused:
        message += f"; {len(refused)} refused: " + "; ".join(refused[:5]) + (" ..." if len(refused) > 5 else "")
    return _answer(request, session, back, message, ok=not refused, status=200 if done or not refused else 409)


def _assign(request: web.Request, session: Session, incident_id: int, action: str, form: Any) -> str:
    """The detail page's assign forms: to me (assignee `me`), to a name and/or a team (a blank one stays as
    it is), or unassign."""
    name = str(form.get("assignee", "")).strip()[: assignment.MAX_NAME + 1]
    team = str(form.get("team", "")).strip()[: assignment.MAX_NAME + 1]
    if action == "assign" and not name and not team:
        raise InvalidInput("invalid_body", "give a name, or a team, to assign to")
    pipeline = request.app[keys.PIPELINE]
    by = session.principal.name
    incident = pipeline.correlator.assign(
        incident_id,
        pipeline.clock.now(),
        by,
        assignee=None if action == "unassign" else assignment.requested(bool(name), name, by),
        team=team or assignment.KEEP,
        reason=str(form.get("reason", ""))[:4000],
    )
    who = f"assigned to {incident.assignee}" if incident.assignee else "unassigned"
    return f"incident {incident_id} {who}" + (f" (team {incident.team})" if incident.team else "")


def _past(action: str) -> str:
    return {"acknowledge": "acknowledged", "resolve": "resolved", "close": "closed", "reopen": "reopened"}[action]


async def _durable(request: web.Request) -> None:
    writer = request.app[keys.PIPELINE].writer
    await writer.durable(writer.changed(), request.app[keys.CONFIG].config.ingest.commit_timeout)


def _answer(
    request: web.Request, session: Any, back: str, message: str, *, ok: bool, status: int = 200
) -> web.StreamResponse:
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"ok": ok, "message": message}, status=status if not ok else 200)
    session.flash.append(message)
    raise web.HTTPSeeOther(location=back)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_incidents, name="console-incidents")
    app.router.add_get("/incidents/{id}", show_incident)
    app.router.add_post("/incidents/{id}/act", act_on_incident)
    app.router.add_post("/incidents-bulk", bulk)
