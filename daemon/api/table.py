"""The route table: every HTTP route of the API, ingest and operations, in the order they are registered.

Each module declares its own routes (ROUTES); this gathers them, puts them on the app, and builds the OpenAPI
document from the same list. The console's pages (daemon/console) are HTML for people and not part of it.
"""

from __future__ import annotations

from aiohttp import web

from daemon import reload
from daemon.api import (
    alertmanager_v2,
    changes,
    drills,
    external,
    health,
    manage,
    openapi,
    reports,
    rest,
    runs,
    webhooks,
)
from daemon.api.principals import Role
from daemon.api.routes import Route, register, role_table
from daemon.ingest import handlers

ROUTES: list[Route] = [
    *handlers.ROUTES,
    *rest.ROUTES,
    *alertmanager_v2.ROUTES,
    *runs.ROUTES,
    *changes.ROUTES,
    *drills.ROUTES,
    *reports.ROUTES,
    *webhooks.ROUTES,
    *external.ROUTES,
    *manage.ROUTES,
    *reload.ROUTES,
    *openapi.ROUTES,
    *health.ROUTES,
]
ROUTE_ROLES: dict[tuple[str, str], Role] = role_table(ROUTES)
"""(method, route template) -> the least role that may call it. HEAD goes with GET."""


def add_routes(app: web.Application) -> None:
    alertmanager_v2.setup(app)
    register(app, ROUTES)
    app[openapi.DOCUMENT] = openapi.build_document(ROUTES)
