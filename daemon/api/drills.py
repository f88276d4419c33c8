"""The drills API: the drills in use with their schedule, targets, last result and next run; run one now.

`POST /api/v1/drills/{name}/run` answers 202 with the drill run once it is recorded durably; the result comes
later (poll `GET /api/v1/drills/{name}`, whose `last` is that run until another starts). A drill of a service
that has one running is refused with 409 naming it; one that cannot run (open P1/P2 incident) is recorded
`skipped` and answered 202 like any other, with the reason.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from daemon.api import answers, keys
from daemon.api.principals import Role, principal_of
from daemon.api.routes import Body, Ok, Route
from daemon.api.runs import ACTOR_PATTERN, WRITE_REFUSALS, _Body, _body
from daemon.drills.model import DrillRun
from daemon.drills.spec import Drill
from daemon.errors import NotFound
from daemon.storage.timestamps import rfc3339

Json = dict[str, Any]


class RunDrill(_Body):
    by: str | None = Field(default=None, pattern=ACTOR_PATTERN)
    """Whom the caller asks for: noted on the change of the drill's runbook run (`on_behalf_of`). The drill
    run's requested_by is the authenticated principal."""


def drill_run_json(d: DrillRun | None) -> Json | None:
    if d is None:
        return None
    return {
        "id": d.id,
        "drill": d.drill,
        "service": d.service,
        "trigger": d.trigger,
        "requested_by": d.requested_by,
        "outcome": d.outcome.value,
        "reason": d.reason,
        "run_id": d.run_id,
        "started_at": rfc3339(d.started_at),
        "ended_at": rfc3339(d.ended_at),
        "recovery_seconds": d.recovery_seconds,
        "rto_seconds": d.rto_seconds,
        "rpo_seconds": d.rpo_seconds,
        "data_loss_seconds": d.data_loss_seconds,
    }


def drill_json(request: web.Request, drill: Drill) -> Json:
    runner = request.app[keys.DRILLS]
    next_run = request.app[keys.DRILL_SCHEDULE].next_run(drill.name) if drill.enabled else None
    running = runner.running(drill.service)
    success = runner.last_success.get(drill.service)
    return {
        "name": drill.name,
        "service": drill.service,
        "runbook": drill.runbook,
        "params": drill.params,
        "schedule": drill.schedule,
        "time_zone": drill.time_zone,
        "enabled": drill.enabled,
        "rto_seconds": drill.rto,
        "rpo_seconds": drill.rpo,
        "rpo_query": drill.rpo_query,
        "recovery": drill.recovery.model_dump(),
        "next_run": rfc3339(next_run.timestamp()) if next_run is not None else None,
        "last": drill_run_json(runner.last.get(drill.name)),
        "running": drill_run_json(running if running is not None and running.drill == drill.name else None),
        "service_running": drill_run_json(running),
        "service_last_success": rfc3339(success) if success is not None else None,
    }


def _drill(request: web.Request) -> Drill:
    name = request.match_info["name"]
    drill = request.app[keys.DRILLS].drills.get(name)
    if drill is None:
        raise NotFound("not_found", f"no drill named {name!r} (drills come from rules/drills.yaml)")
    return drill


async def list_drills(request: web.Request) -> web.Response:
    drills = sorted(request.app[keys.DRILLS].drills.values(), key=lambda d: d.name)
    return web.json_response({"drills": [drill_json(request, d) for d in drills]})


async def get_drill(request: web.Request) -> web.Response:
    return web.json_response(drill_json(request, _drill(request)))


async def run_drill(request: web.Request) -> web.Response:
    drill = _drill(request)
    body: RunDrill = await _body(request, RunDrill)
    runner = request.app[keys.DRILLS]
    actor = principal_of(request).name
    started = runner.start(drill.name, trigger="manual", requested_by=actor)
    if body.by and started.run_id is not None:
        now = request.app[keys.CLOCK].now()
        request.app[keys.CHANGES].annotate(started.run_id, now, actor, "drill requested", on_behalf_of=body.by)
    await runner.durable(request.app[keys.CONFIG].config.runbooks.durable_timeout)
    return web.json_response(drill_run_json(started), status=202)


ROUTES = [
    Route(
        "GET",
        "/api/v1/drills",
        list_drills,
        "Continuity drills in use: schedule, time zone, RTO/RPO, recovery check, last result, next run",
        {200: Ok("drills", answers.Drills)},
        role=Role.VIEWER,
        tags=("drills",),
    ),
    Route(
        "GET",
        "/api/v1/drills/{name}",
        get_drill,
        "One drill with its last result (outcome, measured recovery time, reason) and next run",
        {200: Ok("the drill", answers.Drill), 404: "no drill of that name"},
        role=Role.VIEWER,
        tags=("drills",),
    ),
    Route(
        "POST",
        "/api/v1/drills/{name}/run",
        run_drill,
        "Run a drill now; 202 with the drill run (poll the drill for the result). Recorded skipped, with the"
        " reason, while the service has an open P1/P2 incident",
        {
            202: Ok("the drill run, recorded durably (it may already be skipped or in error)", answers.DrillRun),
            404: "no drill of that name",
            409: "a drill of the same service is running; the message names it",
            **WRITE_REFUSALS,
        },
        role=Role.ADMIN,
        body=Body(RunDrill, required=False),
        tags=("drills",),
    ),
]
