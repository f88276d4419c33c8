"""Who may call what: a middleware that checks credentials per endpoint group.

Groups: `ingest` (POST /webhook/alertmanager, POST /api/v2/alerts), `api_read` (GET and HEAD under /api/v1
and /api/v2) and `api_write` (every other method under /api/v1 and /api/v2). /-/healthy, /-/ready and /metrics
stay open. `POST /-/reload` is in api_write. A group without configured credentials is open. Refusals answer 401
(no or wrong credentials, with WWW-Authenticate) or 403 (a read token on a write endpoint) and are counted in
`itsmd_auth_failures_total{group}`; the presented credential is never echoed or logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from daemon.api import keys
from daemon.api.errors import error_response
from daemon.config import AuthConfig
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
REALM = 'realm="itsmd"'
MAX_HEADER_BYTES = 4096


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
        return API_READ if request.method in READ_METHODS else API_WRITE
    return None


def _any_matches(secrets: Iterable[Secret], presented: bytes) -> bool:
    # No short cut: every secret is compared, so the time taken does not tell which one matched.
    found = False
    for secret in secrets:
        found |= secret.matches(presented)
    return found


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
        self._read = [t.secret for t in config.api.read_tokens]
        self._write = [t.secret for t in config.api.write_tokens]
        self._ingest_on = ingest.enabled
        self._api_on = config.api.enabled

    def is_open(self, group: str) -> bool:
        return not (self._ingest_on if group == INGEST else self._api_on)

    def challenges(self, group: str) -> list[str]:
        out = []
        if group != INGEST or self._ingest_token is not None:
            out.append(f"Bearer {REALM}")
        if group == INGEST and self._ingest_user is not None:
            out.append(f'Basic {REALM}, charset="UTF-8"')
        return out

    def check(self, group: str, authorization: str | None) -> None:
        """Returns when the request may go on; raises _Refusal otherwise."""
        if authorization is None:
            raise _Refusal(401, "unauthorized", self._needs(group))
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if not credentials or len(authorization) > MAX_HEADER_BYTES:
            raise _Refusal(401, "unauthorized", f"malformed Authorization header; {self._needs(group)}")
        if scheme == "bearer":
            token = credentials.encode("utf-8", "surrogateescape")
            if group == INGEST:
                if self._ingest_token is not None and self._ingest_token.matches(token):
                    return
            elif group == API_READ:
                if _any_matches([*self._read, *self._write], token):
                    return
            elif _any_matches(self._write, token):
                return
            elif _any_matches(self._read, token):
                raise _Refusal(403, "forbidden", "this token may read but not write")
            raise _Refusal(401, "unauthorized", f"invalid credentials; {self._needs(group)}")
        user, password = self._ingest_user, self._ingest_password
        if scheme == "basic" and group == INGEST and user is not None and password is not None:
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
        if group != INGEST:
            kind = "a write token" if group == API_WRITE else "a read or write token"
            return f"this endpoint needs {kind} (Authorization: Bearer ...)"
        ways = []
        if self._ingest_token is not None:
            ways.append("a bearer token")
        if self._ingest_user is not None:
            ways.append("basic auth")
        return f"this endpoint needs {' or '.join(ways)}"


def middleware(config: AuthConfig) -> Middleware:
    """The auth middleware for create_app; with nothing configured every group is open."""
    authenticator = Authenticator(config)

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        group = group_of(request)
        if group is None or authenticator.is_open(group):
            return await handler(request)
        try:
            authenticator.check(group, request.headers.get("Authorization"))
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
