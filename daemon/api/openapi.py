"""GET /api/v1/openapi.json: the HTTP API described as OpenAPI 3.1, built from the route declarations.

Every operation comes from a Route (daemon/api/routes.py): its parameters, its body (the pydantic models and
TypeAdapters that validate it, so the document cannot drift from what is accepted), its answers (the models
of daemon/api/answers.py), its security and, for a route with a role, the 401 and 403 refusals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from daemon import __version__
from daemon.api import answers
from daemon.api.principals import Role
from daemon.api.routes import Ok, Query, Route, Schema

Json = dict[str, Any]
REF = "#/components/schemas/{model}"
DESCRIPTION = """\
itsmd's HTTP API. Authentication is configured per group (`auth:` in the config); a group without credentials \
is open, and the open API's caller is the principal `anonymous` (role admin).

* The API (`/api/v1`, the Alertmanager v2 reads, `POST /-/reload`) takes a named token as \
`Authorization: Bearer <token>` (scheme apiToken). Each token has a role (viewer < responder < approver < admin); \
each operation names the least role it needs, and a lower one is refused with 403.
* Behind a trusted reverse proxy (`auth.proxy`), the proxy may name the user in its headers instead (user, email, \
groups; the groups map to roles). Those headers count only from the proxy's addresses (`auth.proxy.trusted_cidrs`): \
from anywhere else they are refused with 403. This is not an OpenAPI security scheme, since only the proxy can use it.
* Ingest (`POST /webhook/alertmanager`, `POST /api/v2/alerts`) has its own credentials: a bearer token \
(ingestToken) or basic auth (ingestBasic).
* `/-/healthy`, `/-/ready` and `/metrics` are always open.

Every refusal answers JSON `{status: "error", reason, error}`; `reason` is a stable code.
"""
SECURITY_SCHEMES: Json = {
    "apiToken": {"type": "http", "scheme": "bearer", "description": "a named API token (auth.api.tokens)"},
    "ingestToken": {"type": "http", "scheme": "bearer", "description": "the ingest token (auth.ingest.token)"},
    "ingestBasic": {"type": "http", "scheme": "basic", "description": "auth.ingest.username and password"},
}
UNAUTHORIZED = "no, malformed or wrong credentials; WWW-Authenticate names the accepted schemes"


class _Components:
    """The schemas the document refers to, each under one name."""

    def __init__(self) -> None:
        self.schemas: Json = {}

    def add(self, name: str, schema: Json) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name} in the OpenAPI document")

    def of(self, schema: Schema) -> Json:
        if isinstance(schema, dict):
            return schema
        if isinstance(schema, TypeAdapter):
            generated = schema.json_schema(ref_template=REF)
        else:
            generated = schema.model_json_schema(ref_template=REF)
        for name, definition in generated.pop("$defs", {}).items():
            self.add(name, definition)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.add(schema.__name__, generated)
            return {"$ref": REF.format(model=schema.__name__)}
        return generated


def _operation_id(route: Route) -> str:
    return route.method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", route.path).rstrip("_")


def _parameters(route: Route) -> list[Json]:
    out: list[Json] = []
    for name in route.parameter_names():
        schema = dict(route.path_params.get(name) or _path_default(name))
        description = schema.pop("description", None)
        param: Json = {"name": name, "in": "path", "required": True, "schema": schema}
        if description is not None:
            param["description"] = description
        out.append(param)
    return out + [_query(q) for q in route.query]


def _path_default(name: str) -> Json:
    return {"type": "integer", "minimum": 0} if name == "id" else {"type": "string"}


def _query(q: Query) -> Json:
    out: Json = {"name": q.name, "in": "query", "required": q.required, "schema": q.schema}
    if q.explode:
        out.update(style="form", explode=True)
    out["description"] = q.description
    return out


def _error(description: str) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _answer(answer: Ok | str, components: _Components) -> Json:
    if isinstance(answer, str):
        return _error(answer)
    content: Json = {"application/json": {"schema": components.of(answer.schema)}} if answer.json else {}
    content.update({media: {"schema": schema} for media, schema in answer.media.items()})
    return {"description": answer.description, "content": content}


def _refusals(route: Route) -> dict[int, str]:
    """The auth middleware's answers for this route, joined to what the route itself says of 401 and 403."""
    if route.access == "open":
        return {}
    out = {401: UNAUTHORIZED}
    if route.role is not None:
        needs = f"the principal's role is below {route.role.label} (the least this operation needs)"
        own = route.responses.get(403)
        out[403] = f"{own}; or {needs}" if isinstance(own, str) else needs
        out[403] += ", or the trusted proxy's headers came from another address"
    return out


def _security(route: Route) -> list[Json]:
    if route.access == "api":
        return [{"apiToken": []}]
    if route.access == "ingest":
        return [{"ingestToken": []}, {"ingestBasic": []}]
    return []


def operation(route: Route, components: _Components) -> Json:
    responses = {**route.responses, **_refusals(route)}
    op: Json = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": list(route.tags),
        "security": _security(route),
    }
    if route.role is not None:
        op["x-itsmd-role"] = route.role.label
    parameters = _parameters(route)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body.required,
            "content": {"application/json": {"schema": components.of(route.body.schema)}},
        }
    op["responses"] = {str(status): _answer(responses[status], components) for status in sorted(responses)}
    return op


def build_document(routes: Sequence[Route]) -> Json:
    components = _Components()
    components.of(answers.Error)
    paths: Json = {}
    for route in routes:
        openapi_path = re.sub(r"{([^}:]+):[^}]*}", r"{\1}", route.path)
        operations = paths.setdefault(openapi_path, {})
        if route.method.lower() in operations:
            raise ValueError(f"{route.method} {route.path} is declared twice")
        operations[route.method.lower()] = operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "itsmd", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": components.schemas, "securitySchemes": SECURITY_SCHEMES},
    }


DOCUMENT = web.AppKey("openapi_document", dict)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


ROUTES = [
    Route(
        "GET",
        "/api/v1/openapi.json",
        openapi,
        "This document: every route itsmd serves, with its role, parameters, body and answers",
        {200: Ok("the OpenAPI 3.1 document", answers.OpenApiDocument)},
        role=Role.VIEWER,
        tags=("operations",),
    ),
]
