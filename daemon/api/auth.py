"""Who may call what: a middleware that authenticates each request and checks the role its route needs.

Groups: `ingest` (POST /webhook/alertmanager, POST /api/v2/alerts), `api_read` (GET and HEAD under /api/v1
and /api/v2) and `api_write` (every other method under /api/v1, and `POST /-/reload`); POST /api/v1/explain
changes nothing and needs only the viewer role. /-/healthy, /-/ready and /metrics stay open. Ingest has its own
credentials; the API authenticates a principal (a named token, or a user named by the trusted proxy) and lets
it on when its role is at least the route's (daemon/api/principals.py). A group without configured
credentials is open; the open API's caller is the principal `anonymous`. Refusals answer 401 (no or wrong
credentials, with WWW-Authenticate) or 403 (a role too low, proxy headers from an untrusted peer) and are
counted in `itsmd_auth_failures_total{group}`; the presented credential is never echoed or logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from daemon.api import keys
from daemon.api.errors import error_response
from daemon.api.principals import ANONYMOUS, PRINCIPAL, RESERVED_NAMES, Principal, Role, required_role
from daemon.config import AuthConfig, ProxyAuth
from daemon.credentials import Secret

log = logging.getLogger(__name__)

INGEST, API_READ, API_WRITE = "ingest", "api_read", "api_write"
GROUPS = (INGEST, API_READ, API_WRITE)
FAILURES = "itsmd_auth_failures_total"
INGEST_PATHS = frozenset({"/webhook/alertmanager", "/api/v2/alerts"})
API_PREFIX = "/api/v1"
AM_PREFIX = "/api/v2"
"""Alertmanager's API: its reads (GET /api/v2/alerts, /status, /silences, ...) are api_read."""
RELOAD_PATH = "/-/reload"
READ_METHODS = frozenset({"GET", "HEAD"})
READ_POSTS = frozenset({"/api/v1/explain"})
"""POSTs that change nothing: a body is their question, not a change."""
REALM = 'realm="itsmd"'
MAX_HEADER_BYTES = 4096
MAX_PROXY_NAME = 200


def group_of(request: web.Request) -> str | None:
    """The endpoint group of a request, or None for the open endpoints.

    Taken from the matched route's template when there is one, so the group is the one of the handler that
    will run whatever the spelling of the path; unmatched paths (404, 405) fall back to the path itself.
    """
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    if path in INGEST_PATHS and not (path.startswith(AM_PREFIX) and request.method in READ_METHODS):
        return INGEST
    if path == RELOAD_PATH:  # changes what the daemon does: only for those who may change things
        return API_WRITE
    if any(path == prefix or path.startswith(prefix + "/") for prefix in (API_PREFIX, AM_PREFIX)):
        if request.method in READ_METHODS or (request.method == "POST" and path in READ_POSTS):
            return API_READ
        return API_WRITE
    return None


def _matching(tokens: Iterable[tuple[Principal, Secret]], presented: bytes) -> Principal | None:
    # No short cut: every secret is compared, so the time taken does not tell which one matched.
    found = None
    for principal, secret in tokens:
        if secret.matches(presented) and found is None:
            found = principal
    return found


def peer_address(request: web.Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The TCP peer of the connection: who really sent the request (not what X-Forwarded-For claims)."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if not isinstance(host, str):
        return None  # a Unix socket or a closed transport: no address to trust
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Refused(Exception):
    """The console's view of a refusal: an HTTP status and a message for the person at the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        ingest = config.ingest
        self._ingest_token = ingest.token
        self._ingest_user = ingest.username.encode() if ingest.username is not None else None
        self._ingest_password = ingest.password
        self._tokens = [
            (Principal(name, Role.of(role), "token"), secret) for name, role, secret in config.api.principals()
        ]
        self._proxy = config.proxy
        self._ingest_on = ingest.enabled
        self._api_on = config.api_enabled

    def is_open(self, group: str) -> bool:
        return not (self._ingest_on if group == INGEST else self._api_on)

    def challenges(self, group: str) -> list[str]:
        out = []
        if group != INGEST or self._ingest_token is not None:
            out.append(f"Bearer {REALM}")
        if group == INGEST and self._ingest_user is not None:
            out.append(f'Basic {REALM}, charset="UTF-8"')
        return out

    def api_principal(self, request: web.Request) -> Principal:
        """The principal of an API request, allowed on its route; raises _Refusal otherwise."""
        if not self._api_on:
            return ANONYMOUS
        needed = required_role(request)
        principal = self._from_proxy(request, self._proxy) if self._proxy is not None else None
        if principal is None:
            principal = self._from_token(needed, request.headers.get("Authorization"))
        if principal.role < needed:
            raise _Refusal(
                403,
                "forbidden",
                f"this endpoint needs role {needed.label} or higher; {principal.name} has role {principal.role.label}",
            )
        return principal

    @property
    def api_open(self) -> bool:
        return not self._api_on

    def console_principal(self, request: web.Request) -> Principal | None:
        """The user the trusted proxy names on this request (None without its headers), for the console;
        raises Refused for headers from an untrusted peer, as the API does."""
        if self._proxy is None:
            return None
        try:
            return self._from_proxy(request, self._proxy)
        except _Refusal as refusal:
            raise Refused(refusal.status, refusal.message) from None

    def token_principal(self, token: str) -> Principal | None:
        """The principal of a presented API token (the console's login), or None."""
        return _matching(self._tokens, token.strip().encode("utf-8", "surrogateescape"))

    def _from_proxy(self, request: web.Request, proxy: ProxyAuth) -> Principal | None:
        """The user the trusted proxy names, or None when the request carries none of its headers."""
        headers = request.headers
        sent = [h for h in (proxy.user_header, proxy.email_header, proxy.groups_header) if h in headers]
        if not sent:
            return None
        peer = peer_address(request)
        if peer is None or not any(peer in network for network in proxy.trusted_cidrs):
            raise _Refusal(
                403,
                "untrusted_proxy",
                f"{', '.join(sent)} is only accepted from the trusted proxy (auth.proxy.trusted_cidrs); "
                f"this connection comes from {peer or 'an unknown address'}",
            )
        twice = [h for h in sent if len(headers.getall(h)) > 1]
        if twice:
            # A proxy that appends instead of replacing would pass a client's own value on first.
            raise _Refusal(401, "unauthorized", f"the proxy sent {', '.join(twice)} more than once")
        email = headers.get(proxy.email_header, "").strip() or None
        name = headers.get(proxy.user_header, "").strip() or email
        if name is None:
            raise _Refusal(401, "unauthorized", f"the proxy named no user ({proxy.user_header} is empty)")
        if len(name) > MAX_PROXY_NAME or not name.isprintable():
            raise _Refusal(401, "unauthorized", f"the proxy's {proxy.user_header} is not a usable user name")
        if name.lower() in RESERVED_NAMES:
            raise _Refusal(403, "forbidden", f"the user name {name!r} is reserved for the daemon")
        groups = tuple(g.strip() for g in headers.get(proxy.groups_header, "").split(",") if g.strip())
        roles = [Role.of(proxy.groups[g]) for g in groups if g in proxy.groups]
        if roles:
            role = max(roles)
        elif proxy.default_role is not None:
            role = Role.of(proxy.default_role)
        else:
            raise _Refusal(
                403,
                "forbidden",
                f"{name} is in no group that auth.proxy.groups maps to a role, and auth.proxy.default_role is unset",
            )
        return Principal(name, role, "proxy", groups=groups, email=email)

    def _from_token(self, needed: Role, authorization: str | None) -> Principal:
        if authorization is None:
            raise _Refusal(401, "unauthorized", self._needs_token(needed))
        scheme, _, credentials = authorization.strip().partition(" ")
        if not credentials.strip() or len(authorization) > MAX_HEADER_BYTES:
            raise _Refusal(401, "unauthorized", f"malformed Authorization header; {self._needs_token(needed)}")
        if scheme.lower() != "bearer":
            raise _Refusal(401, "unauthorized", f"unsupported authorization scheme; {self._needs_token(needed)}")
        found = _matching(self._tokens, credentials.strip().encode("utf-8", "surrogateescape"))
        if found is None:
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs_token(needed)}")
        return found

    def _needs_token(self, needed: Role) -> str:
        via = " or a user named by the trusted proxy" if self._proxy is not None else ""
        return f"this endpoint needs a token of role {needed.label} or higher (Authorization: Bearer ...){via}"

    def check_ingest(self, authorization: str | None) -> None:
        """Returns when an ingest request may go on; raises _Refusal otherwise."""
        group = INGEST
        if authorization is None:
            raise _Refusal(401, "unauthorized", self._needs(group))
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if not credentials or len(authorization) > MAX_HEADER_BYTES:
            raise _Refusal(401, "unauthorized", f"malformed Authorization header; {self._needs(group)}")
        if scheme == "bearer":
            token = credentials.encode("utf-8", "surrogateescape")
            if self._ingest_token is not None and self._ingest_token.matches(token):
                return
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs(group)}")
        user, password = self._ingest_user, self._ingest_password
        if scheme == "basic" and user is not None and password is not None:
            self._check_basic(group, credentials, user, password)
            return
        raise _Refusal(401, "unauthorized", f"unsupported authorization scheme; {self._needs(group)}")

    def _check_basic(self, group: str, credentials: str, user: bytes, password: Secret) -> None:
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _Refusal(401, "unauthorized", f"malformed basic credentials; {self._needs(group)}") from None
        presented_user, sep, presented_password = decoded.partition(b":")
        if not sep:
            raise _Refusal(401, "unauthorized", f"malformed basic credentials; {self._needs(group)}")
        # Both compared every time: a wrong user name takes as long as a wrong password.
        password_ok = password.matches(presented_password)
        user_ok = hmac.compare_digest(user, presented_user)
        if not (user_ok and password_ok):
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs(group)}")

    def _needs(self, group: str) -> str:
        ways = []
        if self._ingest_token is not None:
            ways.append("a bearer token")
        if self._ingest_user is not None:
            ways.append("basic auth")
        return f"this endpoint needs {' or '.join(ways)}"


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


def middleware(config: AuthConfig, authenticator: Authenticator | None = None) -> Middleware:
    """The auth middleware for create_app; with nothing configured every group is open. The console checks
    its logins with the same authenticator."""
    authenticator = authenticator or Authenticator(config)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        group = group_of(request)
        if group is None or authenticator.is_open(group):
            return await handler(request)
        try:
            if group == INGEST:
                authenticator.check_ingest(request.headers.get("Authorization"))
            else:
                request[PRINCIPAL] = authenticator.api_principal(request)
        except _Refusal as refusal:
            request.app[keys.COUNTERS].inc(FAILURES, (("group", group),))
            log.debug("refused %s %s from %s: %s", request.method, request.path, request.remote, refusal.reason)
            response = error_response(refusal.status, refusal.reason, refusal.message)
            if refusal.status == 401:
                for challenge in authenticator.challenges(group):
                    response.headers.add("WWW-Authenticate", challenge)
            return response
        return await handler(request)

    return auth
