"""Rendering console pages: one Jinja2 environment, autoescaped, and the headers every page carries."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jinja2 import PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon import __version__
from daemon.console.security import safe_url, secure
from daemon.console.session import NEW_SESSION, Session, set_cookie

# Our own templates; every value in them is data (much of it from alerts): autoescape keeps it text, and the
# sandbox keeps a template mistake from reaching Python internals.
_env = ImmutableSandboxedEnvironment(
    loader=PackageLoader("daemon.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["safe_url"] = safe_url
TLS = web.AppKey("console_tls", bool)


def page(request: web.Request, template: str, session: Session | None, *, title: str, **context: Any) -> web.Response:
    flash = list(session.flash) if session is not None else []
    if session is not None:
        session.flash.clear()
    html = _env.get_template(template).render(
        title=title,
        session=session,
        principal=session.principal if session is not None else None,
        csrf=session.csrf if session is not None else "",
        flash=flash,
        version=__version__,
        path=request.path,
        **context,
    )
    response = web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})
    tls = request.app.get(TLS, False)
    if NEW_SESSION in request:
        set_cookie(response, request[NEW_SESSION], tls=tls)
    secure(response, tls=tls)
    return response
