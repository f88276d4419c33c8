"""The console's runbook pages: the loaded runbooks, and per runbook a form from its params to see the dry-run
plan (nothing executed, nothing stored) or to start a run by hand (admin).

Starting goes the way of POST /api/v1/runs: the same checks (emergency needs a reason; the service and the
incident must exist), the same engine call with the principal as requester, the same note on the change, and
an answer once durable. A param value is checked by the engine against the param's pattern; the input also
carries the pattern when the browser would read it the same (see `html_pattern`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from daemon.api import keys
from daemon.api.errors import status_of
from daemon.api.runs import StartRun, start_by_hand
from daemon.console.auth import require_session, require_write
from daemon.console.html_pattern import browser_pattern
from daemon.console.render import page
from daemon.console.session import Session
from daemon.errors import InvalidInput, RequestError
from daemon.runbook.library import LoadedRunbook

MAX_VALUE = 1024


def _loaded(request: web.Request) -> LoadedRunbook:
    name = request.match_info["name"]
    loaded = request.app[keys.ENGINE].library.get(name)
    if loaded is None:
        raise web.HTTPNotFound(text=f"no runbook named {name[:64]!r}")
    return loaded


async def list_runbooks(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    library = request.app[keys.ENGINE].library
    rows = []
    for name in library.names():
        spec = library.runbooks[name].spec
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "change": spec.change.type,
                "risk": spec.change.risk,
                "approval": spec.approval.required,
                "params": list(spec.params),
            }
        )
    return page(request, "runbooks.html.j2", session, title="Runbooks", runbooks=rows)


def _readable(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with each step's rendered action as indented JSON text (escaped by the template like any text)."""

    def text(value: object) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)

    steps = []
    for step in (*plan["steps"], *plan["verify"]):
        shown = {**step, "text": text(step["plan"])}
        for part in ("verify", "rollback"):
            shown[part] = {**step[part], "text": text(step[part]["plan"])} if part in step else None
        steps.append(shown)
    return {**plan, "all_steps": steps, "unavailable": plan.get("unavailable", [])}


def _render(
    request: web.Request,
    session: Session,
    loaded: LoadedRunbook,
    values: dict[str, Any],
    *,
    plan: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    spec = loaded.spec
    params = [
        {
            "name": name,
            "label": p.label or name,
            "pattern": p.pattern,
            "html_pattern": browser_pattern(p.pattern),
            "required": p.required and p.default is None,
            "default": p.default or "",
            "description": p.description,
            "value": values.get("params", {}).get(name, ""),
        }
        for name, p in spec.params.items()
    ]
    response = page(
        request,
        "runbook_start.html.j2",
        session,
        title=f"Runbook {spec.name}",
        runbook={
            "name": spec.name,
            "description": spec.description,
            "version": loaded.version,
            "file": Path(loaded.file).name,
            "change": spec.change.type,
            "risk": spec.change.risk,
            "approval": spec.approval.required,
        },
        params=params,
        values=values,
        services=request.app[keys.PIPELINE].correlator.ruleset.catalogue.names(),
        may_start=session.principal.may("admin"),
        plan=plan,
        error=error,
    )
    response.set_status(status)
    return response


async def show_runbook(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    blank = {"params": {}, "service": "", "incident_id": "", "emergency": False, "reason": ""}
    return _render(request, session, _loaded(request), blank)


async def start_runbook(request: web.Request) -> web.StreamResponse:
    session, form = await require_write(request, "admin")
    loaded = _loaded(request)
    spec = loaded.spec
    given = {
        name: str(form.get(f"param.{name}", ""))[:MAX_VALUE]
        for name in spec.params
        if str(form.get(f"param.{name}", ""))
    }
    incident = str(form.get("incident_id", "")).strip()
    values: dict[str, Any] = {
        "params": given,
        "service": str(form.get("service", "")),
        "incident_id": incident,
        "emergency": form.get("emergency") == "on",
        "reason": str(form.get("reason", ""))[:2000],
    }
    engine = request.app[keys.ENGINE]
    try:
        try:
            body = StartRun(
                runbook=spec.name,
                params=given,
                dry_run=form.get("do") == "dry_run",
                emergency=values["emergency"],
                reason=values["reason"],
                service=values["service"] or None,
                incident_id=int(incident) if incident.isascii() and incident.isdigit() and len(incident) < 13 else None,
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "form"
            raise InvalidInput("invalid_body", f"{where}: {first['msg']}") from None
        if incident and body.incident_id is None:
            raise InvalidInput("invalid_body", f"incident_id: {incident[:20]!r} is not an incident number")
        if body.dry_run:
            return _render(request, session, loaded, values, plan=_readable(engine.plan(body.runbook, body.params)))
        run = await start_by_hand(request, body, session.principal.name)
    except RequestError as exc:
        return _render(request, session, loaded, values, error=exc.message, status=status_of(exc))
    session.flash.append(f"run {run.id} of {run.runbook} started: {run.status.value}")
    raise web.HTTPSeeOther(location=f"/runs/{run.id}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/runbooks", list_runbooks)
    app.router.add_get("/runbooks/{name}", show_runbook)
    app.router.add_post("/runbooks/{name}", start_runbook)
