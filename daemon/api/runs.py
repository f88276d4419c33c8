"""The runs API: list and read runs, start one by hand (or dry-run it), approve, reject or cancel.

Runs are read from the engine's memory (active runs and the recent history it keeps), so a client polling a
run sees each step as it happens. Starting or deciding answers only once the transition is durable.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from daemon.api import answers, keys
from daemon.api.principals import Role, principal_of
from daemon.api.rest import BAD_QUERY, PAGING, _page, _whole
from daemon.api.routes import Answer, Body, Ok, Query, Route
from daemon.errors import InvalidInput, NotFound, TooLarge, Unprocessable
from daemon.ingest.handlers import validation_problem
from daemon.runbook.metrics import step_action
from daemon.runbook.model import Run, RunMode, RunStatus, StepRecord
from daemon.storage.runs import load_run
from daemon.storage.timestamps import rfc3339

Json = dict[str, Any]
MAX_BODY_BYTES = 64 * 1024
ACTOR_PATTERN = r"^[A-Za-z0-9_.@:+-]{1,64}$"
RUN_FILTERS = ("all", "active", *(s.value for s in RunStatus))
DECISIONS = ("approve", "reject", "cancel")
MAX_ID = 2**63 - 1
"""SQLite's largest integer: a larger id names no record, and could not even be looked up."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartRun(_Body):
    runbook: str = Field(min_length=1, max_length=64)
    params: dict[str, str] = Field(default_factory=dict, max_length=64)
    dry_run: bool = False
    emergency: bool = False
    reason: str = Field(default="", max_length=2000)
    """Why the run is started; required for an emergency change."""
    by: str | None = Field(default=None, pattern=ACTOR_PATTERN)
    """Whom the caller asks for: a note on the run's change (`on_behalf_of`). The run's requested_by is the
    authenticated principal."""
    service: str | None = Field(default=None, min_length=1, max_length=256)
    incident_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class Decision(_Body):
    by: str | None = Field(default=None, pattern=ACTOR_PATTERN)
    """Whom the caller decides for (`on_behalf_of`); the decider is the authenticated principal."""
    reason: str = Field(default="", max_length=2000)


def run_json(request: web.Request, run: Run) -> Json:
    library = request.app[keys.ENGINE].library
    change = request.app[keys.CHANGES].for_run(run.id)
    return {
        "id": run.id,
        "runbook": run.runbook,
        "version": run.version,
        "mode": run.mode.value,
        "status": run.status.value,
        "reason": run.reason,
        "params": run.params,
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "incident_id": run.incident_id,
        "service": run.service,
        "emergency": run.emergency,
        "lock_key": run.lock_key,
        "lock_scope": run.lock_scope if run.lock_key is not None else None,
        "approval": _approval_json(run),
        "change_id": change.id if change is not None else None,
        "created_at": rfc3339(run.created_at),
        "started_at": rfc3339(run.started_at),
        "ended_at": rfc3339(run.ended_at),
        "duration_seconds": _took(run.started_at, run.ended_at),
        "steps": [_step_json(step, step_action(library, run.runbook, step)) for step in run.steps],
    }


def _approval_json(run: Run) -> Json | None:
    a = run.approval
    if a is None:
        return None
    return {
        "message": a.message,
        "who": list(a.who),
        "requested_at": rfc3339(a.requested_at),
        "expires_at": rfc3339(a.expires_at),
        "decision": a.decision,
        "by": a.by,
        "on_behalf_of": a.on_behalf_of,
        "reason": a.reason,
        "decided_at": rfc3339(a.decided_at),
    }


def _step_json(step: StepRecord, action: str) -> Json:
    return {
        "index": step.index,
        "name": step.name,
        "action": action,
        "phase": step.phase,
        "status": step.status.value,
        "attempts": step.attempts,
        "started_at": rfc3339(step.started_at),
        "ended_at": rfc3339(step.ended_at),
        "duration_seconds": _took(step.started_at, step.ended_at),
        "summary": step.summary,
        "output_digest": step.output_digest,
        "output": step.output,
        "plan": step.plan,
    }


def _took(start: float | None, end: float | None) -> float | None:
    return round(end - start, 6) if start is not None and end is not None else None


async def _body(request: web.Request, model: type[_Body]) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TooLarge("request_entity_too_large", f"Maximum request body size {MAX_BODY_BYTES} exceeded.")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge("request_entity_too_large", f"Maximum request body size {MAX_BODY_BYTES} exceeded.")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def _durable(request: web.Request) -> None:
    writer = request.app[keys.WRITER]
    await writer.durable(writer.changed(), request.app[keys.CONFIG].config.runbooks.durable_timeout)


async def list_runs(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    status = request.query.get("status", "all")
    if status not in RUN_FILTERS:
        raise InvalidInput("invalid_query", f"status must be one of {', '.join(RUN_FILTERS)}")
    runbook = request.query.get("runbook")
    runs = sorted(request.app[keys.ENGINE].runs(), key=lambda r: r.id, reverse=True)
    if status == "active":
        runs = [r for r in runs if r.active]
    elif status != "all":
        runs = [r for r in runs if r.status.value == status]
    if runbook is not None:
        runs = [r for r in runs if r.runbook == runbook]
    return web.json_response({"runs": [run_json(request, r) for r in runs[offset : offset + limit]]})


async def get_run(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    run_id = _whole(raw)
    if run_id is None:
        raise NotFound("not_found", f"no run {raw}")
    run = request.app[keys.ENGINE].get(run_id)
    if run is None:
        # Older runs have left memory; their journal is in the store (committed rows, like every REST read).
        run = await request.app[keys.READER].run(load_run, run_id)
    if run is None:
        raise NotFound("not_found", f"no run {raw}")
    return web.json_response(run_json(request, run))


async def start_run(request: web.Request) -> web.Response:
    body: StartRun = await _body(request, StartRun)
    engine = request.app[keys.ENGINE]
    if body.dry_run:
        plan = engine.plan(body.runbook, body.params)
        return web.json_response({"dry_run": True, "runbook": body.runbook, "plan": plan})
    run = await start_by_hand(request, body, principal_of(request).name)
    return web.json_response(run_json(request, run), status=201)


async def start_by_hand(request: web.Request, body: StartRun, actor: str) -> Run:
    """A run a principal starts (the API and the console both): an emergency needs a reason, the service and
    incident must exist, the reason (and the body's `by`, as on whose behalf) go on its change, and it is
    answered once durable."""
    if body.emergency and not body.reason.strip():
        raise InvalidInput("reason_required", "an emergency change needs a reason: say why it cannot wait")
    await _check_refers(request, body)
    run = request.app[keys.ENGINE].start(
        body.runbook,
        body.params,
        mode=RunMode.LIVE,
        trigger="manual",
        requested_by=actor,
        incident_id=body.incident_id,
        service=body.service,
        emergency=body.emergency,
    )
    if body.reason or body.by:
        now = request.app[keys.CLOCK].now()
        request.app[keys.CHANGES].annotate(run.id, now, actor, body.reason, on_behalf_of=body.by)
    await _durable(request)
    return run


async def _check_refers(request: web.Request, body: StartRun) -> None:
    """A run's change is filed under its service and incident: refuse names of ones that do not exist,
    rather than count the change under a service or incident nobody can find."""
    correlator = request.app[keys.PIPELINE].correlator
    if body.service is not None:
        names = correlator.ruleset.catalogue.names()
        if body.service not in names:
            raise Unprocessable(
                "unknown_service",
                f"service: {body.service[:80]!r} is not in the catalogue (services: {', '.join(sorted(names))})",
            )
    # Not in memory: closed (still a real incident) or never opened; the store knows which.
    incident = body.incident_id
    if (
        incident is not None
        and correlator.get(incident) is None
        and await request.app[keys.READER].incident(incident) is None
    ):
        raise Unprocessable("unknown_incident", f"incident_id: there is no incident {body.incident_id}")


def _decision(verb: str) -> Handler:
    async def decide(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        run_id = _whole(raw)
        engine = request.app[keys.ENGINE]
        if run_id is None or engine.get(run_id) is None:
            raise NotFound("not_found", f"no run {raw}")
        body: Decision = await _body(request, Decision)
        principal = principal_of(request)
        if verb == "cancel":
            run = engine.cancel(run_id, principal.name, body.reason, on_behalf_of=body.by)
        else:
            decide = engine.approve if verb == "approve" else engine.reject
            run = decide(run_id, principal.name, body.reason, on_behalf_of=body.by, identities=principal.identities())
        await _durable(request)
        return web.json_response(run_json(request, run))

    return decide


WRITE_REFUSALS: dict[int, Answer] = {
    400: "bad body: the reason says which field and why",
    413: "body over 64 KiB",
    503: "the store cannot commit now; retry after Retry-After",
}
ROUTES = [
    Route(
        "GET",
        "/api/v1/runs",
        list_runs,
        "Runbook runs the daemon holds in memory (active and recent), newest first",
        {200: Ok("runs with their steps", answers.Runs), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(
            Query("status", {"enum": [*RUN_FILTERS], "default": "all"}, "filter"),
            Query("runbook", {"type": "string"}, "only runs of this runbook"),
            *PAGING,
        ),
        tags=("runs",),
    ),
    Route(
        "POST",
        "/api/v1/runs",
        start_run,
        "Start a runbook by hand (live), or render its plan (dry_run: nothing runs or is stored)",
        {
            200: Ok("dry run: the rendered plan", answers.Plan),
            201: Ok("the run, recorded durably", answers.Run),
            404: "no runbook of that name",
            422: "refused: a bad param, a missing integration, an unknown service or incident_id",
            **WRITE_REFUSALS,
        },
        role=Role.ADMIN,
        body=Body(TypeAdapter(StartRun)),
        tags=("runs",),
    ),
    Route(
        "GET",
        "/api/v1/runs/{id}",
        get_run,
        "One run: status, reason, and every step with attempts, timings and output digest",
        {200: Ok("the run", answers.Run), 404: "no such run"},
        role=Role.VIEWER,
        tags=("runs",),
    ),
    *(
        Route(
            "POST",
            f"/api/v1/runs/{{id}}/{verb}",
            _decision(verb),
            f"{verb.capitalize()} a run",
            {
                200: Ok("the run after the decision", answers.Run),
                403: "the principal's role is too low, it is not in the runbook's approval.who, or it requested "
                "this normal change and may not approve it (separation of duties)",
                404: "no such run",
                409: "not allowed in the run's state; the message names what is",
                **WRITE_REFUSALS,
            },
            role=Role.ADMIN if verb == "cancel" else Role.APPROVER,
            body=Body(TypeAdapter(Decision), required=False),
            tags=("runs",),
        )
        for verb in DECISIONS
    ),
]
