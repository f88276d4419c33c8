"""The operator console: server-rendered pages at `/`, live through server-sent events, no build step.

Pages are HTML from Jinja2 templates in this package, styled by one CSS file and enhanced by one small script
(keyboard, live reload of the page's content, countdowns); everything works without the script too, as plain
forms and links. The console is served by the daemon itself; see `auth` (who), `security` (headers, CSRF, links
from alert data), `live` (SSE), `pages` (incidents).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.api.auth import AUTHENTICATOR
from daemon.clock import Clock
from daemon.config import Config
from daemon.console import (
    auth,
    change_pages,
    pages,
    problem_pages,
    reports,
    run_pages,
    runbook_pages,
    services,
    webhooks,
)
from daemon.console.auth import CONSOLE, Console
from daemon.console.live import LiveHub
from daemon.console.render import TLS, page
from daemon.console.security import secure
from daemon.console.session import NEW_SESSION, Sessions, set_cookie
from daemon.storage import changes as change_store
from daemon.storage import incidents as incident_store
from daemon.storage import problems as problem_store
from daemon.storage import runs as run_store
from daemon.storage.database import Statement

LIVE = web.AppKey("console_live", LiveHub)
PREFIXES = (
    "/incidents",
    "/services",
    "/reports",
    "/login",
    "/logout",
    "/events",
    "/static/",
    "/problems",
    "/changes",
    "/runs",
    "/runbooks",
    "/webhooks",
)
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
}
TOPICS: dict[Statement, str] = {
    incident_store.INCIDENT: "incidents",
    incident_store.TIMELINE: "incidents",
    incident_store.LINK: "incidents",
    run_store.UPSERT_RUN: "runs",
    run_store.UPSERT_STEP: "runs",
    problem_store.UPSERT: "problems",
    problem_store.LINK: "problems",
    change_store.UPSERT: "changes",
    change_store.EVENT: "changes",
    change_store.LINK: "changes",
}


def is_console(path: str) -> bool:
    return path == "/" or path.startswith(PREFIXES)


@web.middleware
async def console_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every console answer (redirects and errors too), the cookie of a session made during
    the request, and errors as pages rather than the API's JSON."""
    if not is_console(request.path):
        return await handler(request)
    tls = request.app.get(TLS, False)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and "application/json" in request.headers.get("Accept", ""):
            response = web.json_response({"ok": False, "message": exc.text}, status=exc.status)
        elif exc.status >= 400:
            response = page(request, "error.html.j2", None, title=exc.reason, status=exc.status, message=exc.text)
            response.set_status(exc.status)
            for name in ("Allow", "WWW-Authenticate"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        else:
            # Answered as a plain response: aiohttp would rebuild a raised one without the cookies set on it.
            response = web.Response(status=exc.status, headers=exc.headers)
            for name, morsel in exc.cookies.items():
                response.cookies[name] = morsel
    if NEW_SESSION in request and not response.prepared:
        set_cookie(response, request[NEW_SESSION], tls=tls)
    if not response.prepared:
        secure(response, tls=tls)
    return response


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(location="/incidents")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text=f"no file {name}")
    body = resources.files("daemon.console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], headers={"Cache-Control": "no-cache"})


async def events(request: web.Request) -> web.StreamResponse:
    if auth.current(request) is None:
        raise web.HTTPUnauthorized(text="log in first")
    return await request.app[LIVE].stream(request)


def setup(app: web.Application, config: Config, clock: Clock) -> None:
    """Routes and state of the console; the live hub is attached to the writer by `attach` once it exists."""
    app[CONSOLE] = Console(
        sessions=Sessions(clock, config.console.idle_timeout),
        authenticator=app[AUTHENTICATOR],
        tls=config.tls.enabled,
    )
    app[TLS] = config.tls.enabled
    app[LIVE] = LiveHub(TOPICS)
    app.middlewares.append(console_pages)
    app.router.add_get("/", root)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/events", events)
    auth.add_routes(app)
    pages.add_routes(app)
    for more in (problem_pages, change_pages, run_pages, runbook_pages):
        more.add_routes(app)
    services.add_routes(app)
    reports.add_routes(app)
    webhooks.add_routes(app)
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    app[LIVE].close()
