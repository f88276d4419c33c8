"""Console sessions: a token is shown once at the login page, the browser keeps only a random session id.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page can make the browser send
it) and Secure when itsmd serves TLS. Sessions live in memory and end after `idle_timeout` without a request, at
logout, or at a restart (people log in again; nothing else is lost). Each session has its own CSRF token, which
every state-changing form and request must carry.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from daemon.clock import Clock

COOKIE = "itsmd_session"
NEW_SESSION = web.RequestKey("itsmd_new_session", str)
"""The id of a session made during this request, whose cookie the answer must set."""
MAX_SESSIONS = 10_000
"""A bound on memory if someone logs in in a loop; the least recently used session goes first."""

ROLES = ("viewer", "responder", "approver", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a name and a role (viewer < responder < approver < admin)."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(slots=True)
class Session:
    principal: Principal
    csrf: str
    last_seen: float
    token: str | None = field(default=None, repr=False)
    """The token it was opened with at the login page (kept here, in the daemon's memory, never in the cookie):
    the session lasts only while that token is in use, so a reload that removes or rotates it ends the session."""
    flash: list[str] = field(default_factory=list)
    """Messages shown once on the next page (results of a form post)."""


class Sessions:
    def __init__(self, clock: Clock, idle_timeout: float) -> None:
        self._clock = clock
        self._idle = idle_timeout
        self._by_id: dict[str, Session] = {}

    def create(self, principal: Principal, *, token: str | None = None) -> tuple[str, Session]:
        while len(self._by_id) >= MAX_SESSIONS:
            oldest = min(self._by_id, key=lambda sid: self._by_id[sid].last_seen)
            del self._by_id[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), self._clock.now(), token=token)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        """The live session of a cookie value; an idle one is ended here."""
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = self._clock.now()
        if now - session.last_seen > self._idle:
            del self._by_id[sid]
            return None
        session.last_seen = now
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_id)


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())


def set_cookie(response: web.StreamResponse, sid: str, *, tls: bool) -> None:
    response.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Strict", secure=tls)
