"""One declaration per HTTP route: method, path, handler, role, query, body and answers.

Each module that serves HTTP exports ROUTES, a list of Route. daemon/api/table.py gathers them; register()
puts them on the aiohttp router and daemon/api/openapi.py builds the OpenAPI document from the same list, so
the document cannot name a route that is not served, miss one that is, or state another role than the one
the auth middleware checks (principals.required_role reads the role registered here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, TypeAdapter

from daemon.api.principals import ROLES, Role

Json = dict[str, Any]
Schema = type[BaseModel] | TypeAdapter[Any] | Json
"""A response or body schema: a pydantic model, a TypeAdapter, or a JSON Schema written out."""
Access = Literal["api", "ingest", "open"]


@dataclass(frozen=True)
class Query:
    name: str
    schema: Json
    description: str
    required: bool = False
    explode: bool = False
    """A repeatable parameter (`filter=a&filter=b`)."""


@dataclass(frozen=True)
class Ok:
    """A success answer: its description and schema; `media` adds other content types (text/markdown, ...)."""

    description: str
    schema: Schema
    media: Mapping[str, Json] = field(default_factory=dict)
    json: bool = True
    """False: the answer is only in `media` (GET /metrics is text)."""


@dataclass(frozen=True)
class Body:
    schema: Schema
    required: bool = True


Answer = Ok | str
"""An Ok, or for 4xx/5xx the description of an error answer ({status, reason, error})."""


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST", "PUT"]
    path: str
    handler: Handler
    summary: str
    responses: Mapping[int, Answer]
    role: Role | None = None
    """The least role that may call it; None for routes outside the API's principals (ingest, open)."""
    access: Access = "api"
    query: tuple[Query, ...] = ()
    body: Body | None = None
    path_params: Mapping[str, Json] = field(default_factory=dict)
    """Schemas of path parameters; `{id}` is a whole number and any other one a string unless named here."""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.access == "api") != (self.role is not None):
            raise ValueError(f"{self.method} {self.path}: an api route needs a role, and only an api route has one")

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def parameter_names(self) -> list[str]:
        return re.findall(r"{([^}:]+)}", self.path)


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Add every route to the app's router and record the role of each for the auth middleware.
    add_get also answers HEAD, which goes with GET's role."""
    roles: dict[tuple[str, str], Role] = {}
    for route in routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
        if route.role is not None:
            roles[route.key] = route.role
    app[ROLES] = roles


def role_table(routes: Iterable[Route]) -> dict[tuple[str, str], Role]:
    """(method, path) -> the least role, for every route that has one."""
    return {r.key: r.role for r in routes if r.role is not None}
