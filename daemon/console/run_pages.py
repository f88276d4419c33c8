"""The console's run pages: the list (by status and runbook) and one run, live while it runs, with the
decisions a person takes on it (approve or reject a waiting run; cancel).

Runs are read as `daemon.api.runs` reads them (the engine's memory, else the journal) and shown from the same
JSON; decisions go through the engine exactly as the API's do, with the principal's identities, so a
runbook's `approval.who` and separation of duties hold in the browser as they do for the API.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.api import keys
from daemon.api.errors import status_of
from daemon.api.principals import Principal, Role
from daemon.api.runs import RUN_FILTERS, run_json
from daemon.console.auth import require_session, require_write
from daemon.console.pages import _answer
from daemon.console.record_views import run_row, run_view
from daemon.console.render import page
from daemon.console.session import Session
from daemon.errors import RequestError
from daemon.runbook.model import Run, RunStatus
from daemon.storage.runs import load_run

PAGE_SIZE = 100
MAX_REASON = 2000
DECISIONS = {"approve": "approver", "reject": "approver", "cancel": "admin"}
"""Each decision and the least role that may take it: the API's (daemon/api/principals.py ROUTE_ROLES)."""
DONE = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}


def identities(session: Session) -> frozenset[str]:
    """What the console's principal answers to in `approval.who`: its name and its roles (a console session
    has no proxy groups)."""
    principal = session.principal
    return Principal(principal.name, Role[principal.role.upper()], "token").identities()


def _run_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
        raise web.HTTPNotFound(text=f"no run {raw}")
    return int(raw)


async def list_runs(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    engine = request.app[keys.ENGINE]
    q = request.query
    notes: list[str] = []
    status = q.get("status", "all")
    if status not in RUN_FILTERS:
        notes.append(f"status {status[:40]!r} is not one of {', '.join(RUN_FILTERS)}")
        status = "all"
    runbook = q.get("runbook", "")[:64]
    runs = sorted(engine.runs(), key=lambda r: r.id, reverse=True)
    if status == "active":
        runs = [r for r in runs if r.active]
    elif status != "all":
        runs = [r for r in runs if r.status.value == status]
    if runbook:
        runs = [r for r in runs if r.runbook == runbook]
    form = {"status": status, "runbook": runbook}
    return page(
        request,
        "runs.html.j2",
        session,
        title="Runs",
        runs=[run_row(run_json(request, r)) for r in runs[:PAGE_SIZE]],
        shown=min(len(runs), PAGE_SIZE),
        total=len(runs),
        form=form,
        notes=notes,
        statuses=RUN_FILTERS,
        runbooks=engine.library.names(),
        status_links={s: "/runs?" + urlencode({**form, "status": s}) for s in ("active", "waiting_approval", "all")},
    )


async def _run(request: web.Request, run_id: int) -> Run | None:
    run = request.app[keys.ENGINE].get(run_id)
    if run is None:
        run = await request.app[keys.READER].run(load_run, run_id)
    return run


async def show_run(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    run_id = _run_id(request)
    run = await _run(request, run_id)
    if run is None:
        raise web.HTTPNotFound(text=f"no run {run_id}")
    view = run_view(run_json(request, run))
    approval = run.approval
    waiting = run.status is RunStatus.WAITING_APPROVAL and approval is not None and approval.decision is None
    principal = session.principal
    in_memory = request.app[keys.ENGINE].get(run_id) is not None
    return page(
        request,
        "run.html.j2",
        session,
        title=f"Run {run_id} {run.runbook}",
        run=view,
        may_decide=waiting and principal.may("approver") and in_memory,
        may_cancel=(not run.status.terminal or run.status is RunStatus.HELD) and principal.may("admin") and in_memory,
        who_may=", ".join(approval.who) if approval is not None and approval.who else "any approver or admin",
    )


def _decision(verb: str) -> Handler:
    async def decide(request: web.Request) -> web.StreamResponse:
        session, form = await require_write(request, DECISIONS[verb])
        run_id = _run_id(request)
        back = f"/runs/{run_id}"
        engine = request.app[keys.ENGINE]
        if engine.get(run_id) is None:
            raise web.HTTPNotFound(text=f"no run {run_id} waiting or running")
        reason = str(form.get("reason", ""))[:MAX_REASON]
        name = session.principal.name
        try:
            if verb == "cancel":
                engine.cancel(run_id, name, reason)
            else:
                decide = engine.approve if verb == "approve" else engine.reject
                decide(run_id, name, reason, identities=identities(session))
        except RequestError as exc:
            return _answer(request, session, back, exc.message, ok=False, status=status_of(exc))
        writer = request.app[keys.WRITER]
        await writer.durable(writer.changed(), request.app[keys.CONFIG].config.runbooks.durable_timeout)
        return _answer(request, session, back, f"run {run_id} {DONE[verb]}", ok=True)

    return decide


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runs", list_runs)
    app.router.add_get("/runs/{id}", show_run)
    for verb in DECISIONS:
        app.router.add_post(f"/runs/{{id}}/{verb}", _decision(verb))
