"""Who is at the console: login with a token, the session cookie, roles, CSRF, logout.

Principals are the API's (daemon/api/auth.py checks both with one authenticator): a named token pasted at the
login page, or the user a trusted proxy names in its headers (then no login page: the session follows the proxy's
user on every request). With no API credential configured the API is open, and so is the console: every visitor is
the principal `anonymous` with the admin role (the README says so; listen on loopback or configure tokens).
Otherwise a page without a live session redirects to the login page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from daemon.api.auth import Authenticator, Refused
from daemon.api.principals import Principal as ApiPrincipal
from daemon.console.render import page
from daemon.console.security import same_origin
from daemon.console.session import COOKIE, NEW_SESSION, Principal, Session, Sessions, csrf_ok, set_cookie

ANONYMOUS = Principal("anonymous", "admin")
MAX_FORM = 64 * 1024


@dataclass
class Console:
    sessions: Sessions
    authenticator: Authenticator
    tls: bool

    @property
    def open(self) -> bool:
        """No API credentials configured: the console needs no login either."""
        return self.authenticator.api_open

    def identify(self, token: str) -> Principal | None:
        found = self.authenticator.token_principal(token)
        return _console_principal(found) if found is not None else None


CONSOLE = web.AppKey("console", Console)


def _console_principal(found: ApiPrincipal) -> Principal:
    return Principal(found.name, found.role.label)


def current(request: web.Request) -> Session | None:
    console = request.app[CONSOLE]
    try:
        proxied = console.authenticator.console_principal(request)
    except Refused as refused:
        raise (web.HTTPForbidden if refused.status == 403 else web.HTTPUnauthorized)(text=refused.message) from None
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is not None and session.token is not None and console.identify(session.token) != session.principal:
        # A reload removed or rotated the token (or changed its role): its sessions end with it.
        console.sessions.end(request.cookies.get(COOKIE))
        session = None
    if proxied is not None:
        # The proxy names the user on every request; a session of somebody else (a token login, or another user
        # behind the same browser) gives way to the one the proxy names now.
        principal = _console_principal(proxied)
        if session is None or session.principal != principal:
            sid, session = console.sessions.create(principal)
            request[NEW_SESSION] = sid
        return session
    if session is None and console.open:
        # The cookie is set on the answer (render.page), so the next request finds this session and its CSRF
        # token matches the one in the forms of this page.
        sid, session = console.sessions.create(ANONYMOUS)
        request[NEW_SESSION] = sid
    return session


def require_session(request: web.Request) -> Session:
    session = current(request)
    if session is None:
        target = request.path_qs if request.method == "GET" else "/incidents"
        raise web.HTTPSeeOther(location=f"/login?next={quote(target, safe='')}")
    return session


async def require_write(request: web.Request, role: str) -> tuple[Session, MultiDictProxy[Any]]:
    """The session of a state-changing request that passed the CSRF checks and has `role`; else 401/403."""
    session = current(request)
    if session is None:
        raise web.HTTPUnauthorized(text="log in first")
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-site request refused")
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM, actual_size=request.content_length)
    form = await request.post()
    presented = form.get("csrf") or request.headers.get("X-CSRF-Token")
    if not csrf_ok(session, presented if isinstance(presented, str) else None):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page and try again")
    if not session.principal.may(role):
        raise web.HTTPForbidden(
            text=f"{session.principal.name} has the role {session.principal.role}; this needs {role} or above"
        )
    return session, form


def _next(value: str | None) -> str:
    """Only a path on this console: an open redirect would let a link send people elsewhere after login."""
    if not value:
        return "/incidents"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/incidents"
    return value


async def login_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if console.open or current(request) is not None:
        raise web.HTTPSeeOther(location=_next(request.query.get("next")))
    return page(request, "login.html.j2", None, title="Log in", next=_next(request.query.get("next")), error=None)


async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-site login refused")
    form = await request.post()
    token = form.get("token")
    target = _next(str(form.get("next", "")))
    principal = console.identify(token.strip()) if isinstance(token, str) and token.strip() else None
    if principal is None:
        response = page(request, "login.html.j2", None, title="Log in", next=target, error="That token is not valid.")
        response.set_status(401)
        return response
    sid, _ = console.sessions.create(principal, token=token.strip() if isinstance(token, str) else None)
    response = web.HTTPSeeOther(location=target)
    set_cookie(response, sid, tls=console.tls)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    session = current(request)
    if session is not None:
        form = await request.post()
        presented = form.get("csrf")
        if not csrf_ok(session, presented if isinstance(presented, str) else None):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        console.sessions.end(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther(location="/login" if not console.open else "/incidents")
    response.del_cookie(COOKIE, path="/")
    raise response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
