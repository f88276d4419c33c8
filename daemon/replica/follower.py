"""The app a follower replica serves: ingest into the shared inbox, everything else forwarded to the leader.

    POST /webhook/alertmanager, POST /api/v2/alerts   authenticated and parsed exactly as on the leader, then
                                                      the raw body committed to `inbox` before the 2xx
    GET /metrics, /-/healthy, /-/ready                this replica's own (ready: the database answers)
    anything else                                     reverse-proxied to the lease holder (daemon/replica/proxy.py)

The follower holds no alerts or records: its /metrics has what it accepted and refused and its own process,
never the ITSM record metrics (those come from the leader). Its counters live in memory only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from daemon.api import auth, health, keys
from daemon.api.errors import json_errors
from daemon.api.routes import Route, register
from daemon.clock import Clock, SystemClock
from daemon.config import LoadedConfig
from daemon.errors import InvalidInput, Overloaded, RateLimited, RequestError, StoreUnavailable
from daemon.ingest import handlers
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.counters import CounterStore
from daemon.replica import kinds
from daemon.replica.inbox_writer import InboxWriter
from daemon.replica.proxy import LeaderLookup, Proxy, Replica, session
from daemon.storage import inbox
from daemon.storage.database import Batch

ACCEPTED = "itsmd_inbox_accepted_total"
ACCEPTED_ALERTS = "itsmd_inbox_accepted_alerts_total"
REFUSED = "itsmd_inbox_refused_total"
WRITER = web.AppKey("inbox_writer", InboxWriter)
POOL = web.AppKey("replica_pool", AsyncConnectionPool)
PROXY = web.AppKey("replica_proxy", Proxy)
REPLICA = web.AppKey("replica", Replica)
READY_TIMEOUT = 2.0


class _InMemory:
    """A follower's counters are never written anywhere: it has no store of its own."""

    def touched(self) -> None:
        pass

    def add_collector(self, collector: Callable[[Batch, bool], None]) -> None:
        pass


class FollowerCollector(Collector):
    def __init__(self, counters: CounterStore, writer: Callable[[], InboxWriter | None]) -> None:
        self._counters = counters
        self._writer = writer

    def _family(self, name: str, doc: str, label: str) -> Metric:
        family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=[label])
        for labels, value in sorted(self._counters.series(name)):
            family.add_metric([dict(labels).get(label, "")], value)
        return family

    def collect(self) -> Iterable[Metric]:
        yield self._family(ACCEPTED, "Ingest bodies this replica committed to the inbox, by kind.", "kind")
        yield self._family(ACCEPTED_ALERTS, "Alerts in the bodies this replica committed, by kind.", "kind")
        yield self._family(REFUSED, "Ingest requests this replica refused, by reason.", "reason")
        yield self._family(auth.FAILURES, "Requests refused for missing or wrong credentials.", "group")
        writer = self._writer()
        commits = CounterMetricFamily("itsmd_inbox_commits", "Inbox transactions this replica committed.")
        commits.add_metric([], writer.commits if writer is not None else 0)
        yield commits
        up = writer is not None and writer.healthy
        yield GaugeMetricFamily("itsmd_store_up", "1 while the inbox takes writes.", value=int(up))


async def _accept(request: web.Request, kind: str) -> web.Response:
    app = request.app
    counters = app[keys.COUNTERS]
    clock = app[keys.CLOCK]
    cfg = app[keys.CONFIG].config.ingest
    try:
        limiter = app[keys.RATE_LIMITER]
        if limiter.enabled:
            wait = limiter.take(request.remote or "")
            if wait is not None:
                raise RateLimited(
                    "rate_limited", f"over {limiter.rate:g} requests/s from {request.remote}", retry_after=wait
                )
        body = await handlers.read_body(request)
        now = clock.now()
        kept, own = handlers.drop_own(kinds.parse(kind, body, cfg, now))
        if kept or own:
            received = inbox.Received(
                received_at=now,
                replica=app[REPLICA].name,
                kind=kind,
                body=_text(body),
                principal=_principal(request),
                source=handlers.v2_sender(request) if kind == kinds.V2 else None,
            )
            await app[WRITER].put(received, cfg.commit_timeout)
    except RequestError as exc:
        counters.inc(REFUSED, (("reason", exc.reason),))
        raise
    except StoreUnavailable:
        counters.inc(REFUSED, (("reason", "store_unavailable"),))
        raise
    except Overloaded:
        counters.inc(REFUSED, (("reason", "queue_full"),))
        raise
    counters.inc(ACCEPTED, (("kind", kind),))
    counters.inc(ACCEPTED_ALERTS, (("kind", kind),), len(kept))
    answer: dict[str, object] = {"status": "success", "accepted": len(kept)}
    if own:
        answer["ignored_own"] = own
    return web.json_response(answer)


def _text(body: bytes) -> str:
    # The parser took it, so it is UTF-8 JSON; a NUL cannot be in a PostgreSQL TEXT nor in valid JSON text.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("invalid_json", "body is not UTF-8") from None
    if "\x00" in text:
        raise InvalidInput("invalid_json", "body holds a NUL character")
    return text


def _principal(request: web.Request) -> str | None:
    """The name of the ingest credential the request was let on with (None: ingest is open)."""
    return request.get(auth.INGEST_CREDENTIAL)


async def webhook_alertmanager(request: web.Request) -> web.Response:
    return await _accept(request, kinds.WEBHOOK)


async def post_alerts_v2(request: web.Request) -> web.Response:
    return await _accept(request, kinds.V2)


async def ready(request: web.Request) -> web.Response:
    health_state = request.app[keys.HEALTH]
    if health_state.draining:
        return web.json_response({"status": "draining"}, status=503)
    try:
        async with request.app[POOL].connection(timeout=READY_TIMEOUT) as conn:
            await asyncio.wait_for(inbox.ping(conn), READY_TIMEOUT)
    except Exception as exc:  # psycopg errors, PoolTimeout, TimeoutError: the database does not answer
        return web.json_response({"status": "store_unavailable", "error": f"database: {exc}"}, status=503)
    return web.json_response({"status": "ready"})


async def _forward(request: web.Request) -> web.StreamResponse:
    return await request.app[PROXY].handle(request)


def _routes() -> list[Route]:
    """The leader's ingest routes and health routes, with the follower's handlers."""
    handlers_of = {
        ("POST", "/webhook/alertmanager"): webhook_alertmanager,
        ("POST", "/api/v2/alerts"): post_alerts_v2,
        ("GET", "/-/ready"): ready,
    }
    return [
        Route(r.method, r.path, handlers_of.get(r.key, r.handler), r.summary, r.responses, access=r.access)
        for r in (*handlers.ROUTES, *health.ROUTES)
    ]


def create_follower_app(
    loaded: LoadedConfig,
    state: Replica,
    *,
    dsn: str,
    lease_ttl: float = 1.0,
    collectors: Sequence[Collector] = (),
    clock: Clock | None = None,
    commit_window: float = 0.002,
) -> web.Application:
    """The follower's app. `lease_ttl`: how long a read of the lease is trusted (the renew interval);
    `collectors`: more for /metrics (the lease's itsmd_leader and itsmd_replica_info)."""
    clock = clock or SystemClock()
    authenticator = auth.Authenticator(loaded.config.auth, clock)
    app = web.Application(
        client_max_size=loaded.config.ingest.max_body_bytes,
        middlewares=[json_errors, auth.middleware(authenticator)],
    )
    counters = CounterStore(_InMemory())
    for reason in handlers.REJECT_REASONS:
        counters.ensure(REFUSED, (("reason", reason),))
    for kind in kinds.KINDS:
        counters.ensure(ACCEPTED, (("kind", kind),))
        counters.ensure(ACCEPTED_ALERTS, (("kind", kind),))
    for group in auth.GROUPS:
        counters.ensure(auth.FAILURES, (("group", group),))
    app[keys.CONFIG] = loaded
    app[keys.HEALTH] = keys.Health()
    app[keys.CLOCK] = clock
    app[keys.COUNTERS] = counters
    app[auth.AUTHENTICATOR] = authenticator
    app[REPLICA] = state
    ingest = loaded.config.ingest
    app[keys.RATE_LIMITER] = RateLimiter(ingest.rate_limit, ingest.rate_burst)

    registry = CollectorRegistry(auto_describe=True)
    registry.register(FollowerCollector(counters, lambda: app.get(WRITER)))
    registry.register(authenticator)
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    app[health.REGISTRY] = registry

    register(app, _routes())
    # Last: the router tries it only when no route above matched path and method (GET /api/v2/alerts too).
    app.router.add_route("*", "/{tail:.*}", _forward)

    async def components(app: web.Application) -> AsyncIterator[None]:
        writer = InboxWriter(dsn, window=commit_window, max_queued=ingest.max_pending_changes)
        pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=2,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": 3},
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=False)
        client = session()
        app[WRITER] = writer
        app[POOL] = pool
        app[PROXY] = Proxy(state, LeaderLookup(pool, lease_ttl, monotonic=time.monotonic), client, authenticator)
        task = asyncio.create_task(writer.run(), name="inbox-writer")
        app[keys.HEALTH].started = True
        try:
            yield
        finally:
            app[keys.HEALTH].draining = True
            writer.close()
            await task
            await client.close()
            await pool.close()

    async def draining(app: web.Application) -> None:
        app[keys.HEALTH].draining = True

    app.cleanup_ctx.append(components)
    app.on_shutdown.append(draining)
    return app
