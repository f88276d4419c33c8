"""A follower forwards everything but ingest and its own health to the leader, and streams the answer back.

The leader is whoever holds an unexpired lease (daemon/storage/leader.py), read at most once per `ttl`
(the lease's renew interval) so a takeover is followed within one interval. Each answer says who served it
and who led (X-Itsmd-Served-By, X-Itsmd-Leader). With no leader, a lease naming this very replica (it is
taking over or stepping down), or a leader that cannot be reached, the answer is 503 no_leader with
Retry-After: nothing is half-forwarded. Bodies are passed as bytes (no decompression), the answer streamed
chunk by chunk as it arrives, so the console's server-sent events work through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from psycopg_pool import AsyncConnectionPool
from yarl import URL

from daemon.api.auth import Authenticator, peer_address
from daemon.errors import Forbidden, Unavailable
from daemon.storage import leader as lease

log = logging.getLogger(__name__)

SERVED_BY = "X-Itsmd-Served-By"
LEADER = "X-Itsmd-Leader"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""RFC 9110 7.6.1: meant for one connection, never forwarded (with whatever Connection names)."""
NO_LEADER = "no_leader"
CONNECT_TIMEOUT = 3.0


class Replica(Protocol):
    """What the proxy needs of this replica's state (daemon/replica/state.py's ReplicaState)."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...


class LeaderLookup:
    """The lease holder, cached for at most `ttl` seconds."""

    def __init__(
        self, pool: AsyncConnectionPool, ttl: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = pool
        self.ttl = ttl
        self._monotonic = monotonic
        self._cached: tuple[float, lease.Leader | None] | None = None

    async def current(self) -> lease.Leader | None:
        now = self._monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        try:
            async with self._pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                found = await lease.current(conn)
        except Exception as exc:  # psycopg errors, PoolTimeout: the lease cannot be read, so no leader is known
            self._cached = None
            raise Unavailable(
                NO_LEADER, f"cannot read the leader lease: {exc}", retry_after=max(self.ttl, 1.0)
            ) from None
        self._cached = (now, found)
        return found

    def forget(self) -> None:
        """Read the lease afresh next time (the leader it named did not answer)."""
        self._cached = None


def end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The headers without the hop-by-hop ones."""
    named = {token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",") if token}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in named)


def session() -> aiohttp.ClientSession:
    """The proxy's client: bytes as they come (no decompression), no cookies kept between callers, no headers
    of its own, no overall deadline (event streams stay open), a bounded connect."""
    return aiohttp.ClientSession(
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
    )


class Proxy:
    def __init__(
        self, replica: Replica, lookup: LeaderLookup, client: aiohttp.ClientSession, authenticator: Authenticator
    ) -> None:
        self._replica = replica
        self._lookup = lookup
        self._client = client
        self._authenticator = authenticator

    def _check_proxy_headers(self, request: web.Request) -> None:
        """The leader sees this follower as the TCP peer, so the follower must be in its auth.proxy.trusted_cidrs
        for users named by the SSO proxy to get through; then only the follower may refuse those headers from
        anyone else, with the leader's own answer (403 untrusted_proxy)."""
        proxy = self._authenticator.config.proxy
        if proxy is None:
            return
        sent = [h for h in (proxy.user_header, proxy.email_header, proxy.groups_header) if h in request.headers]
        peer = peer_address(request)
        if sent and (peer is None or not any(peer in network for network in proxy.trusted_cidrs)):
            raise Forbidden(
                "untrusted_proxy",
                f"{', '.join(sent)} is only accepted from the trusted proxy (auth.proxy.trusted_cidrs); "
                f"this connection comes from {peer or 'an unknown address'}",
            )

    def _retry_after(self) -> float:
        return max(self._lookup.ttl, 1.0)

    async def leader(self) -> lease.Leader:
        found = await self._lookup.current()
        if found is None:
            raise Unavailable(NO_LEADER, "no replica holds the leader lease now", retry_after=self._retry_after())
        if found.name == self._replica.name or found.url.rstrip("/") == self._replica.url.rstrip("/"):
            raise Unavailable(
                NO_LEADER,
                f"the lease names this replica ({found.name}), which is not serving as leader yet",
                retry_after=self._retry_after(),
            )
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._check_proxy_headers(request)
        leader = await self.leader()
        target = URL(leader.url.rstrip("/") + request.raw_path, encoded=True)
        headers = end_to_end(request.headers)
        headers.popall("Host", None)
        headers.popall("Content-Length", None)  # the client sets it for the bytes it sends
        headers.popall("Expect", None)  # the body is read already: nothing left to continue
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Proto"] = request.scheme
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        body = await request.read() if request.body_exists else None
        try:
            upstream = await self._client.request(
                request.method, target, headers=headers, data=body, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._lookup.forget()
            raise Unavailable(
                NO_LEADER,
                f"the leader {leader.name} at {leader.url} cannot be reached: {exc or type(exc).__name__}",
                retry_after=self._retry_after(),
            ) from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(end_to_end(upstream.headers))
            response.headers[SERVED_BY] = self._replica.name
            response.headers[LEADER] = leader.name
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, ConnectionError) as exc:
                # Headers are gone already: end the connection, so the cut-short answer cannot pass as whole.
                log.info("forwarding %s %s from %s broke off: %s", request.method, request.path, leader.name, exc)
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
        return response
