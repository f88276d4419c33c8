"""Changing incidents and problems, reading problems, the audit trail and the catalogue, and explain.

Handlers validate the body, call the module that owns the record (correlator, problem manager), wait until
the change is durable and answer with the record as stored. Invalid transitions answer 409 naming the
allowed ones; unknown ids 404.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.api import keys
from daemon.api.principals import principal_of
from daemon.api.rest import _page, _whole, live_sla
from daemon.audit import read_events
from daemon.correlate.incidents import ACTIONS as INCIDENT_ACTIONS
from daemon.correlate.store import incident_exists
from daemon.errors import Conflict, InvalidInput, NotFound, TooLarge
from daemon.explain import explain, incident_answer
from daemon.model import ProblemStatus
from daemon.problems.manager import ACTIONS as PROBLEM_ACTIONS
from daemon.problems.store import problem_exists, read_problem, read_problems
from integrations.alertmanager.fingerprint import without_empty

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 64 * 1024
PROBLEM_STATUSES: dict[str, str | None] = {s.value: s.value for s in ProblemStatus} | {"all": None}
RECORD_TYPES = ("incident", "problem", "run")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionBody(_Body):
    by: str | None = Field(default=None, min_length=1, max_length=200)
    """Whom the caller acts for; recorded as `on_behalf_of` next to the authenticated principal, who is the actor."""
    reason: str = Field(default="", max_length=4000)
    force: bool = False
    """resolve only: resolve although alerts still fire (recorded as forced)."""


class NoteBody(_Body):
    by: str | None = Field(default=None, min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=16000)


class ProblemBody(_Body):
    by: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="", max_length=4000)
    root_cause: str | None = Field(default=None, max_length=16000)
    workaround: str | None = Field(default=None, max_length=16000)
    runbook: str | None = Field(default=None, min_length=1, max_length=200)


class ExplainBody(_Body):
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise TooLarge("too_large", f"body over {MAX_BODY} bytes")
    try:
        doc = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid_json", f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput("invalid_body", f"{where}: {first['msg']}") from None


def _id(request: web.Request, what: str) -> int:
    raw = request.match_info["id"]
    value = _whole(raw)
    if value is None:
        raise NotFound("not_found", f"no {what} {raw}")
    return value


async def _durable(request: web.Request) -> None:
    pipeline = request.app[keys.PIPELINE]
    await pipeline.writer.durable(pipeline.writer.changed(), request.app[keys.CONFIG].config.ingest.commit_timeout)


async def _incident_answer(request: web.Request, incident_id: int) -> web.Response:
    found = await request.app[keys.READER].incident(incident_id)
    return web.json_response(live_sla(request, found) if found is not None else found)


async def incident_action(request: web.Request) -> web.Response:
    incident_id = _id(request, "incident")
    action = request.match_info["action"]
    body = await _body(request, ActionBody)
    pipeline = request.app[keys.PIPELINE]
    if pipeline.correlator.get(incident_id) is None:
        await _not_active(request, incident_id)
    if body.force and action != "resolve":
        raise InvalidInput("invalid_body", "force applies to resolve only")
    actor = principal_of(request).name
    pipeline.correlator.act(
        incident_id, action, pipeline.clock.now(), actor, body.reason, force=body.force, on_behalf_of=body.by
    )
    await _durable(request)
    return await _incident_answer(request, incident_id)


async def incident_note(request: web.Request) -> web.Response:
    incident_id = _id(request, "incident")
    body = await _body(request, NoteBody)
    pipeline = request.app[keys.PIPELINE]
    actor = principal_of(request).name
    if not pipeline.correlator.add_note(incident_id, pipeline.clock.now(), actor, body.text, on_behalf_of=body.by):
        await _not_active(request, incident_id)
    await _durable(request)
    return await _incident_answer(request, incident_id)


async def _not_active(request: web.Request, incident_id: int) -> None:
    """An incident not in memory is closed (409: closed is final) or does not exist (404)."""
    if await request.app[keys.READER].run(incident_exists, incident_id):
        raise Conflict("invalid_transition", f"incident {incident_id} is closed; allowed: none")
    raise NotFound("not_found", f"no incident {incident_id}")


async def list_problems(request: web.Request) -> web.Response:
    value = request.query.get("status", "all")
    if value not in PROBLEM_STATUSES:
        raise InvalidInput("invalid_query", f"status must be one of {', '.join(PROBLEM_STATUSES)}")
    limit, offset = _page(request)
    found = await request.app[keys.READER].run(read_problems, PROBLEM_STATUSES[value], limit, offset)
    return web.json_response({"problems": found})


async def get_problem(request: web.Request) -> web.Response:
    problem_id = _id(request, "problem")
    found = await request.app[keys.READER].run(read_problem, problem_id)
    if found is None:
        raise NotFound("not_found", f"no problem {problem_id}")
    return web.json_response(found)


async def problem_action(request: web.Request) -> web.Response:
    problem_id = _id(request, "problem")
    action = request.match_info["action"]
    body = await _body(request, ProblemBody)
    pipeline = request.app[keys.PIPELINE]
    problems = pipeline.correlator.problems
    if problems.get(problem_id) is None:
        if await request.app[keys.READER].run(problem_exists, problem_id):
            raise Conflict("invalid_transition", f"problem {problem_id} is resolved; allowed: none")
        raise NotFound("not_found", f"no problem {problem_id}")
    problems.transition(
        problem_id,
        action,
        pipeline.clock.now(),
        principal_of(request).name,
        reason=body.reason,
        root_cause=body.root_cause,
        workaround=body.workaround,
        runbook=body.runbook,
        on_behalf_of=body.by,
    )
    await _durable(request)
    found = await request.app[keys.READER].run(read_problem, problem_id)
    return web.json_response(found)


async def list_audit(request: web.Request) -> web.Response:
    record_type = request.query.get("record_type")
    if record_type is not None and record_type not in RECORD_TYPES:
        raise InvalidInput("invalid_query", f"record_type must be one of {', '.join(RECORD_TYPES)}")
    record_id = request.query.get("record_id")
    limit, offset = _page(request)
    found = await request.app[keys.READER].run(read_events, record_type, record_id, limit, offset)
    return web.json_response({"events": found})


async def post_explain(request: web.Request) -> web.Response:
    """Changes nothing (a read token may call it): what the alert would get, and what it would do now."""
    body = await _body(request, ExplainBody)
    labels = without_empty(body.labels)
    if not labels:
        raise InvalidInput("invalid_body", "labels: every value is empty, and a label with an empty value is no label")
    pipeline = request.app[keys.PIPELINE]
    correlator = pipeline.correlator
    now = pipeline.clock.now()
    result: dict[str, Any] = explain(correlator.ruleset, labels, body.annotations, now)
    result.update(incident_answer(correlator.decide(result["key"], result["fingerprint"], now)))
    return web.json_response(result)


async def list_services(request: web.Request) -> web.Response:
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    out = []
    for name in catalogue.names():
        service = catalogue.get(name)
        out.append(
            {
                "name": service.name,
                "description": service.description,
                "owner": service.owner,
                "team": service.team,
                "tier": service.tier,
                "availability_objective": service.availability_objective,
                "default": name == catalogue.default_service,
                "matchers": [str(m) for m in service.matchers] or [f'{catalogue.service_label}="{service.name}"'],
                "targets": {p: catalogue.target(service, p).model_dump() for p in ("P1", "P2", "P3", "P4", "P5")},
                "maintenance": [w.model_dump(mode="json", exclude_defaults=True) for w in service.maintenance],
            }
        )
    return web.json_response({"services": out})


def add_routes(app: web.Application) -> None:
    actions = "|".join(INCIDENT_ACTIONS)
    app.router.add_post(f"/api/v1/incidents/{{id}}/{{action:{actions}}}", incident_action)
    app.router.add_post("/api/v1/incidents/{id}/notes", incident_note)
    app.router.add_get("/api/v1/problems", list_problems)
    app.router.add_get("/api/v1/problems/{id}", get_problem)
    app.router.add_post(f"/api/v1/problems/{{id}}/{{action:{'|'.join(PROBLEM_ACTIONS)}}}", problem_action)
    app.router.add_get("/api/v1/audit", list_audit)
    app.router.add_post("/api/v1/explain", post_explain)
    app.router.add_get("/api/v1/services", list_services)
