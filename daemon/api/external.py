"""PUT /api/v1/incidents/{id}/external: the incident's ticket in another system (a Jira issue a webhook
consumer created). Recorded through the correlator (timeline, audit, a webhook event), answered once durable."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from daemon.api import answers, keys
from daemon.api.manage import CHANGE_ANSWERS, _Body, _body, _durable, _id, _incident_answer, _not_active
from daemon.api.principals import Role, principal_of
from daemon.api.routes import Body, Ok, Route

SYSTEM_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
KEY_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
URL_PATTERN = r"^https?://[^\s<>\"'\x00-\x1f\x7f]+$"
"""http and https only: the console links to it, and a javascript: or data: URL must never become a link."""


class ExternalBody(_Body):
    system: str = Field(pattern=SYSTEM_PATTERN)
    """The other system's name, like jira or servicenow."""
    key: str = Field(pattern=KEY_PATTERN)
    """The ticket's id there, like OPS-1234."""
    url: str = Field(max_length=2048, pattern=URL_PATTERN)
    by: str | None = Field(default=None, min_length=1, max_length=200)


async def put_external(request: web.Request) -> web.Response:
    incident_id = _id(request, "incident")
    body = await _body(request, ExternalBody)
    pipeline = request.app[keys.PIPELINE]
    ticket = {"system": body.system, "key": body.key, "url": body.url}
    actor = principal_of(request).name
    if not pipeline.correlator.set_external(incident_id, pipeline.clock.now(), actor, ticket, on_behalf_of=body.by):
        await _not_active(request, incident_id)
    await _durable(request)
    return await _incident_answer(request, incident_id)


ROUTES = [
    Route(
        "PUT",
        "/api/v1/incidents/{id}/external",
        put_external,
        "Record the incident's ticket in another system (replaces the one recorded before)",
        {200: Ok("the incident as stored", answers.IncidentDetail), **CHANGE_ANSWERS},
        role=Role.RESPONDER,
        body=Body(ExternalBody),
        tags=("incidents",),
    )
]
