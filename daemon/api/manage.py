"""Changing incidents and problems, reading problems, the audit trail and the catalogue, and explain.

Handlers validate the body, call the module that owns the record (correlator, problem manager), wait until
the change is durable and answer with the record as stored. Invalid transitions answer 409 naming the
allowed ones; unknown ids 404.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daemon.api import answers, keys
from daemon.api.principals import Role, principal_of
from daemon.api.rest import BAD_QUERY, PAGING, _page, _whole, live_sla
from daemon.api.routes import Answer, Body, Ok, Query, Route
from daemon.correlate import assignment
from daemon.correlate.incidents import ACTIONS as INCIDENT_ACTIONS
from daemon.errors import Conflict, InvalidInput, NotFound, TooLarge
from daemon.explain import explain, incident_answer
from daemon.model import ProblemStatus
from daemon.problems.manager import ACTIONS as PROBLEM_ACTIONS
from daemon.storage.audit import read_events
from daemon.storage.incidents import incident_exists
from daemon.storage.problems import problem_exists, read_problem, read_problems
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


class AssignBody(_Body):
    """Leave a field out to keep it as it is; at least one of assignee and team."""

    assignee: str | None = Field(default=None, min_length=1, max_length=assignment.MAX_NAME)
    """A principal's name, "me" for the calling principal, or null to unassign."""
    team: str | None = Field(default=None, min_length=1, max_length=assignment.MAX_NAME)
    """A team some catalogue service has (the incident's team is its service's until changed here)."""
    by: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str = Field(default="", max_length=4000)

    @field_validator("team")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("a team's name; leave team out to keep the team")
        return value


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


def _incident_action(action: str) -> Handler:
    async def incident_action(request: web.Request) -> web.Response:
        return await _act_on_incident(request, action)

    return incident_action


async def _act_on_incident(request: web.Request, action: str) -> web.Response:
    incident_id = _id(request, "incident")
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


async def incident_assign(request: web.Request) -> web.Response:
    incident_id = _id(request, "incident")
    body = await _body(request, AssignBody)
    given = body.model_fields_set
    if "assignee" not in given and "team" not in given:
        raise InvalidInput("invalid_body", 'give assignee (a name, "me", or null to unassign), team, or both')
    pipeline = request.app[keys.PIPELINE]
    if pipeline.correlator.get(incident_id) is None:
        await _not_active(request, incident_id)
    actor = principal_of(request).name
    pipeline.correlator.assign(
        incident_id,
        pipeline.clock.now(),
        actor,
        assignee=assignment.requested("assignee" in given, body.assignee, actor),
        team=body.team if body.team is not None else assignment.KEEP,
        reason=body.reason,
        on_behalf_of=body.by,
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


def _problem_action(action: str) -> Handler:
    async def problem_action(request: web.Request) -> web.Response:
        return await _act_on_problem(request, action)

    return problem_action


async def require_open_problem(request: web.Request, problem_id: int) -> None:
    """Problems in memory are the ones not resolved; a resolved one is in the store only (409), else 404."""
    if request.app[keys.PIPELINE].correlator.problems.get(problem_id) is not None:
        return
    if await request.app[keys.READER].run(problem_exists, problem_id):
        raise Conflict("invalid_transition", f"problem {problem_id} is resolved; allowed: none")
    raise NotFound("not_found", f"no problem {problem_id}")


async def _act_on_problem(request: web.Request, action: str) -> web.Response:
    problem_id = _id(request, "problem")
    body = await _body(request, ProblemBody)
    pipeline = request.app[keys.PIPELINE]
    problems = pipeline.correlator.problems
    await require_open_problem(request, problem_id)
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


INCIDENT_ACTION_SUMMARIES = {
    "acknowledge": "Acknowledge an open incident (stops the response clock)",
    "resolve": "Resolve an incident; refused (409 alerts_firing) while alerts fire unless force is true",
    "reopen": "Reopen a resolved incident",
    "close": "Close a resolved incident (final)",
}
PROBLEM_ACTION_SUMMARIES = {
    "confirm": "Confirm a candidate problem",
    "known_error": "Record root cause and workaround (and optionally a runbook): the problem becomes a known error",
    "resolve": "Resolve a problem",
}
CHANGE_ANSWERS: dict[int, Answer] = {
    400: "invalid body (the reason and error say which field)",
    404: "no such record",
    409: "not allowed from the record's status; the error names the allowed actions",
    413: "body too large",
    503: "the store cannot commit now; retry after Retry-After",
}
ROUTES = [
    *(
        Route(
            "POST",
            f"/api/v1/incidents/{{id}}/{action}",
            _incident_action(action),
            INCIDENT_ACTION_SUMMARIES[action],
            {200: Ok("the incident as stored, with its timeline", answers.IncidentDetail), **CHANGE_ANSWERS},
            role=Role.RESPONDER,
            body=Body(ActionBody),
            tags=("incidents",),
        )
        for action in INCIDENT_ACTIONS
    ),
    Route(
        "POST",
        "/api/v1/incidents/{id}/assign",
        incident_assign,
        'Assign an incident to a principal (assignee: a name, or "me" for the caller), to nobody (assignee: null)'
        " and/or to a team of the catalogue; a field left out stays as it is. On the timeline and in the audit"
        " trail as assigned or unassigned; nothing is recorded when nothing changes",
        {200: Ok("the incident as stored", answers.IncidentDetail), **CHANGE_ANSWERS},
        role=Role.RESPONDER,
        body=Body(AssignBody),
        tags=("incidents",),
    ),
    Route(
        "POST",
        "/api/v1/incidents/{id}/notes",
        incident_note,
        "Add a note to an incident's timeline",
        {200: Ok("the incident as stored", answers.IncidentDetail), **CHANGE_ANSWERS},
        role=Role.RESPONDER,
        body=Body(NoteBody),
        tags=("incidents",),
    ),
    Route(
        "GET",
        "/api/v1/problems",
        list_problems,
        "Problems, newest first",
        {200: Ok("problems", answers.Problems), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(Query("status", {"enum": [*PROBLEM_STATUSES], "default": "all"}, "filter"), *PAGING),
        tags=("problems",),
    ),
    Route(
        "GET",
        "/api/v1/problems/{id}",
        get_problem,
        "One problem with its incidents",
        {200: Ok("the problem", answers.Problem), 404: "no such problem"},
        role=Role.VIEWER,
        tags=("problems",),
    ),
    *(
        Route(
            "POST",
            f"/api/v1/problems/{{id}}/{action}",
            _problem_action(action),
            PROBLEM_ACTION_SUMMARIES[action],
            {200: Ok("the problem as stored", answers.Problem), **CHANGE_ANSWERS},
            role=Role.RESPONDER,
            body=Body(ProblemBody),
            tags=("problems",),
        )
        for action in PROBLEM_ACTIONS
    ),
    Route(
        "GET",
        "/api/v1/audit",
        list_audit,
        "Audit events (append-only), oldest first",
        {200: Ok("events", answers.AuditEvents), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(
            Query("record_type", {"enum": list(RECORD_TYPES)}, "incident, problem or run (approval decisions)"),
            Query("record_id", {"type": "string"}, "the record's id"),
            *PAGING,
        ),
        tags=("audit",),
    ),
    Route(
        "POST",
        "/api/v1/explain",
        post_explain,
        "Which service, rule, key and priority an alert gets, and whether it would open, attach to or reopen an"
        " incident now; changes nothing",
        {200: Ok("the explanation", answers.Explanation), 400: "invalid body", 413: "body too large"},
        role=Role.VIEWER,  # computes an answer, changes nothing
        body=Body(ExplainBody),
        tags=("incidents",),
    ),
    Route(
        "GET",
        "/api/v1/services",
        list_services,
        "The service catalogue with effective targets",
        {200: Ok("services", answers.Services)},
        role=Role.VIEWER,
        tags=("services",),
    ),
]
