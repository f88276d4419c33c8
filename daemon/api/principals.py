"""Who is calling: principals, their roles, and the role each API route needs.

A principal is a named API token, a user named by the trusted reverse proxy, `anonymous` while the API is open,
or the daemon itself (`itsmd`, which no request can be). Roles are ordered, each one allowing what the ones
below it allow:

    viewer < responder < approver < admin

Every route under /api/v1, the Alertmanager reads under /api/v2 and /-/reload state their role in their route
declaration (daemon/api/routes.py), the one place that decides; required_role reads it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from daemon.config import RESERVED_PRINCIPALS, RoleName


class Role(enum.IntEnum):
    VIEWER = 1
    """Reads everything under /api/v1."""
    RESPONDER = 2
    """Works incidents (acknowledge, resolve, reopen, close, notes, assign) and problems (confirm, known_error,
    resolve)."""
    APPROVER = 3
    """Also approves or rejects runs waiting for approval."""
    ADMIN = 4
    """Also starts runs by hand, cancels runs, runs drills and reloads the rules."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, name: RoleName) -> Role:
        return cls[name.upper()]


ANONYMOUS_NAME = "anonymous"
RESERVED_NAMES = RESERVED_PRINCIPALS
"""Names no token or proxied user may have: the daemon's own actor, the open API's, the drill scheduler's."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    via: Literal["token", "proxy", "open"]
    groups: tuple[str, ...] = field(default=())
    email: str | None = None

    def identities(self) -> frozenset[str]:
        """What this principal answers to in a runbook's `approval.who`: its name, `role:<r>` for its role
        and every role below it, and `group:<g>` for each group the proxy named."""
        roles = {f"role:{r.label}" for r in Role if r <= self.role}
        return frozenset({self.name, *roles, *(f"group:{g}" for g in self.groups)})


ANONYMOUS = Principal(ANONYMOUS_NAME, Role.ADMIN, "open")
"""The caller while the API has no authentication configured: anyone who can reach it may do anything."""

PRINCIPAL = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The authenticated principal of a request (set by the auth middleware; anonymous while the API is open)."""
    found = request.get(PRINCIPAL)
    return found if isinstance(found, Principal) else ANONYMOUS


ROLES: web.AppKey[dict[tuple[str, str], Role]] = web.AppKey("route_roles")
"""(method, route template) -> the least role that may call it, from the route declarations
(daemon/api/routes.py register). HEAD goes with GET."""

READ_METHODS = frozenset({"GET", "HEAD"})


def route_template(request: web.Request) -> str:
    """The matched route's template ({id} for any id), so the role is the one of the handler that will run
    whatever the spelling of the path; unmatched paths (404, 405) fall back to the path itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def required_role(request: web.Request) -> Role:
    """The role a request needs. A route without a declared role (or an unmatched path) needs viewer to
    read and admin for anything else, so a route added without a declaration is not opened by accident."""
    method = "GET" if request.method == "HEAD" else request.method
    declared = request.app.get(ROLES, {}).get((method, route_template(request)))
    if declared is not None:
        return declared
    return Role.VIEWER if request.method in READ_METHODS else Role.ADMIN
