"""Who may call what: a middleware that authenticates each request and checks the role its route needs.

Groups: `ingest` (POST /webhook/alertmanager, POST /api/v2/alerts), `api_read` (GET and HEAD under /api/v1
and /api/v2) and `api_write` (every other method under /api/v1, and `POST /-/reload`); POST /api/v1/explain
changes nothing and needs only the viewer role. /-/healthy, /-/ready and /metrics stay open. Ingest has its own
credentials; the API authenticates a principal (a named token, or a user named by the trusted proxy) and lets
it on when its role is at least the route's (daemon/api/principals.py). A group without configured
credentials is open; the open API's caller is the principal `anonymous`. Refusals answer 401 (no or wrong
credentials, with WWW-Authenticate) or 403 (a role too low, proxy headers from an untrusted peer) and are
counted in `itsmd_auth_failures_total{group}`; the presented credential is never echoed or logged. Requests
let on are counted by credential name in `itsmd_auth_credential_uses_total{group,credential}`. A reload
replaces the whole credential set at once (daemon/reload.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.api import keys
from daemon.api.errors import error_response
from daemon.api.principals import ANONYMOUS, PRINCIPAL, RESERVED_NAMES, Principal, Role, required_role
from daemon.clock import Clock
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


T = TypeVar("T")


def _matching(tokens: Iterable[tuple[T, Secret]], presented: bytes) -> T | None:
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


@dataclass(frozen=True)
class Credentials:
    """One consistent set of credentials, from one read of the auth section: swapped whole at a reload."""

    config: AuthConfig
    ingest_tokens: tuple[tuple[str, Secret], ...]
    ingest_users: tuple[tuple[str, bytes, Secret], ...]
    api_tokens: tuple[tuple[Principal, Secret], ...]

    @classmethod
    def of(cls, config: AuthConfig) -> Credentials:
        ingest = config.ingest
        return cls(
            config,
            tuple(ingest.named_tokens()),
            tuple((name, user.encode(), secret) for name, user, secret in ingest.named_users()),
            tuple((Principal(name, Role.of(role), "token"), secret) for name, role, secret in config.api.principals()),
        )

    def names(self) -> set[tuple[str, str]]:
        """(group, credential name) of every credential: the series of the uses metric."""
        out = {(INGEST, name) for name, _ in self.ingest_tokens} | {(INGEST, name) for name, _, _ in self.ingest_users}
        return out | {(group, p.name) for p, _ in self.api_tokens for group in (API_READ, API_WRITE)}


class Authenticator(Collector):
    """Checks each request against the credentials in use; a reload replaces them all at once.

    Whether a group is open is fixed at start: a reload that would open a closed group (or close an open one)
    is refused, since `itsmd run` decided at start where it may listen without ingest credentials.
    """

    def __init__(self, config: AuthConfig, clock: Clock) -> None:
        self._clock = clock
        self._ingest_on = config.ingest.enabled
        self._api_on = config.api_enabled
        self._current = Credentials.of(config)
        self._uses: dict[tuple[str, str], int] = dict.fromkeys(self._current.names(), 0)
        self._last_used: dict[tuple[str, str], float] = {}

    @property
    def config(self) -> AuthConfig:
        """The auth section in use (the console's login reads its tokens from here)."""
        return self._current.config

    def refusals(self, config: AuthConfig) -> list[str]:
        """Why `config` cannot replace the credentials in use without a restart (empty: it can)."""
        out = []
        if config.ingest.enabled != self._ingest_on:
            now = "turn ingest authentication off" if self._ingest_on else "turn ingest authentication on"
            out.append(f"a reload cannot {now} (auth.ingest): restart itsmd for that")
        if config.api_enabled != self._api_on:
            now = "turn API authentication off" if self._api_on else "turn API authentication on"
            out.append(f"a reload cannot {now} (auth.api, auth.proxy): restart itsmd for that")
        return out

    def replace(self, config: AuthConfig) -> None:
        """Use `config`'s credentials from the next request on. One assignment, so a request sees either the
        old set or the new one, never neither. Check `refusals` first."""
        new = Credentials.of(config)
        before, after = self._current.names(), new.names()
        self._current = new
        self._uses = {key: self._uses.get(key, 0) for key in after}
        self._last_used = {key: t for key, t in self._last_used.items() if key in after}
        log.info(
            "credentials reloaded: added %s; removed %s; in use: %s",
            _listed(after - before),
            _listed(before - after),
            _listed(after),
        )

    def used(self, group: str, name: str) -> None:
        key = (group, name)
        if key in self._uses:
            self._uses[key] += 1
            self._last_used[key] = self._clock.now()
        log.debug("%s request authenticated with credential %s", group, name)

    def collect(self) -> Iterable[Metric]:
        uses = CounterMetricFamily(
            "itsmd_auth_credential_uses",
            "Requests let on with each configured credential (by name, never by value), since start.",
            labels=("group", "credential"),
        )
        for (group, name), count in sorted(self._uses.items()):
            uses.add_metric((group, name), count)
        yield uses
        last = GaugeMetricFamily(
            "itsmd_auth_credential_last_used_timestamp_seconds",
            "When each configured credential last let a request on (absent: not used since start).",
            labels=("group", "credential"),
        )
        for (group, name), when in sorted(self._last_used.items()):
            last.add_metric((group, name), when)
        yield last

    def is_open(self, group: str) -> bool:
        return not (self._ingest_on if group == INGEST else self._api_on)

    def challenges(self, group: str) -> list[str]:
        current = self._current
        out = []
        if group != INGEST or current.ingest_tokens:
            out.append(f"Bearer {REALM}")
        if group == INGEST and current.ingest_users:
            out.append(f'Basic {REALM}, charset="UTF-8"')
        return out

    def api_principal(self, request: web.Request) -> Principal:
        """The principal of an API request, allowed on its route; raises _Refusal otherwise."""
        if not self._api_on:
            return ANONYMOUS
        needed = required_role(request)
        current = self._current  # one set for the whole check, whatever a reload does meanwhile
        proxy = current.config.proxy
        principal = self._from_proxy(request, proxy) if proxy is not None else None
        if principal is None:
            principal = self._from_token(current, needed, request.headers.get("Authorization"))
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
        proxy = self._current.config.proxy
        if proxy is None:
            return None
        try:
            return self._from_proxy(request, proxy)
        except _Refusal as refusal:
            raise Refused(refusal.status, refusal.message) from None

    def token_principal(self, token: str) -> Principal | None:
        """The principal of a presented API token (the console's login, against the tokens in use now), or None."""
        return _matching(self._current.api_tokens, token.strip().encode("utf-8", "surrogateescape"))

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

    def _from_token(self, current: Credentials, needed: Role, authorization: str | None) -> Principal:
        if authorization is None:
            raise _Refusal(401, "unauthorized", self._needs_token(needed))
        scheme, _, credentials = authorization.strip().partition(" ")
        if not credentials.strip() or len(authorization) > MAX_HEADER_BYTES:
            raise _Refusal(401, "unauthorized", f"malformed Authorization header; {self._needs_token(needed)}")
        if scheme.lower() != "bearer":
            raise _Refusal(401, "unauthorized", f"unsupported authorization scheme; {self._needs_token(needed)}")
        found = _matching(current.api_tokens, credentials.strip().encode("utf-8", "surrogateescape"))
        if found is None:
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs_token(needed)}")
        return found

    def _needs_token(self, needed: Role) -> str:
        via = " or a user named by the trusted proxy" if self._current.config.proxy is not None else ""
        return f"this endpoint needs a token of role {needed.label} or higher (Authorization: Bearer ...){via}"

    def check_ingest(self, authorization: str | None) -> str:
        """The name of the credential an ingest request presents; raises _Refusal when it matches none."""
        current = self._current  # one set for the whole check, whatever a reload does meanwhile
        if authorization is None:
            raise _Refusal(401, "unauthorized", self._needs(current))
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if not credentials or len(authorization) > MAX_HEADER_BYTES:
            raise _Refusal(401, "unauthorized", f"malformed Authorization header; {self._needs(current)}")
        found: str | None
        if scheme == "bearer" and current.ingest_tokens:
            found = _matching(current.ingest_tokens, credentials.encode("utf-8", "surrogateescape"))
        elif scheme == "basic" and current.ingest_users:
            found = self._check_basic(current, credentials)
        elif scheme == "bearer":
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs(current)}")
        else:
            raise _Refusal(401, "unauthorized", f"unsupported authorization scheme; {self._needs(current)}")
        if found is None:
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs(current)}")
        return found

    def _check_basic(self, current: Credentials, credentials: str) -> str | None:
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _Refusal(401, "unauthorized", f"malformed basic credentials; {self._needs(current)}") from None
        presented_user, sep, presented_password = decoded.partition(b":")
        if not sep:
            raise _Refusal(401, "unauthorized", f"malformed basic credentials; {self._needs(current)}")
        # Every user name and password compared, no short cut: a wrong user name takes as long as a wrong
        # password, and the time does not tell which entry matched.
        found = None
        for name, user, password in current.ingest_users:
            password_ok = password.matches(presented_password)
            user_ok = hmac.compare_digest(user, presented_user)
            if user_ok and password_ok and found is None:
                found = name
        return found

    def _needs(self, current: Credentials) -> str:
        ways = []
        if current.ingest_tokens:
            ways.append("a bearer token")
        if current.ingest_users:
            ways.append("basic auth")
        return f"this endpoint needs {' or '.join(ways)}"


def _listed(keys: Iterable[tuple[str, str]]) -> str:
    names = sorted({f"{name} ({'ingest' if group == INGEST else 'api'})" for group, name in keys})
    return ", ".join(names) or "none"


def middleware(authenticator: Authenticator) -> Middleware:
    """The auth middleware for create_app; with nothing configured every group is open."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        group = group_of(request)
        if group is None or authenticator.is_open(group):
            return await handler(request)
        try:
            if group == INGEST:
                credential = authenticator.check_ingest(request.headers.get("Authorization"))
                request[INGEST_CREDENTIAL] = credential
                authenticator.used(group, credential)
            else:
                principal = authenticator.api_principal(request)
                request[PRINCIPAL] = principal
                if principal.via == "token":
                    authenticator.used(group, principal.name)
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


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
"""The credentials in use: the middleware checks requests against them, a reload replaces them."""
INGEST_CREDENTIAL = web.RequestKey("ingest_credential", str)
"""The name of the credential an ingest request was let on with (absent: ingest is open)."""
