"""What keeps the console's pages safe with hostile alert data and hostile sites around.

* Every page is rendered with autoescaping, so labels, annotations and titles are text, never markup.
* Links from alert data (generatorURL, runbook links in annotations) are links only for http and https.
* The Content-Security-Policy allows scripts and styles only from the daemon itself, with no inline script or
  style at all: even markup that slipped through could not run.
* State-changing requests need the session's CSRF token and, when the browser says where the request comes
  from (Origin, Sec-Fetch-Site), that it comes from the console itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
LINK_SCHEMES = frozenset({"http", "https"})


def secure(response: web.StreamResponse, *, tls: bool) -> web.StreamResponse:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if tls:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def safe_url(value: object) -> str | None:
    """The URL when a browser may follow it from our page (http or https, no credentials), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.netloc or "@" in parts.netloc:
        return None
    return value.strip()


def same_origin(request: web.Request) -> bool:
    """False when the browser tells us the request comes from another site; True when it says nothing (a
    script or an old browser: the CSRF token still has to match)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.scheme}://{request.host}"
