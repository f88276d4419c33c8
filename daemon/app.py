"""Composition root: builds the stages, wires them together and owns their lifecycle.

The app never touches signals (cli.py does), so tests embed it with aiohttp's test server. Shutdown
order: the HTTP server stops accepting and drains in-flight requests (their commits still happen), then
periodic tasks stop, the writer commits what is left within the deadline, and the store is closed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from daemon import __version__
from daemon.alerts.table import AlertTable
from daemon.api import auth, health, keys, openapi, rest
from daemon.api.errors import json_errors
from daemon.clock import Clock, SystemClock
from daemon.config import LoadedConfig
from daemon.correlate.incidents import Correlator
from daemon.ingest import handlers
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.collector import ItsmdCollector
from daemon.metrics.counters import CounterStore, PersistedHistogram
from daemon.model import Alert
from daemon.pipeline import Pipeline
from daemon.storage.database import Database, connect, load_alert
from daemon.storage.queries import Reader
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

log = logging.getLogger(__name__)

INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CHECKPOINT_INTERVAL = 5.0
CLOCK = web.AppKey("clock", Clock)


def create_app(loaded: LoadedConfig, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        client_max_size=loaded.config.ingest.max_body_bytes,
        middlewares=[json_errors, auth.middleware(loaded.config.auth)],
    )
    app[keys.CONFIG] = loaded
    app[keys.HEALTH] = keys.Health()
    app[CLOCK] = clock or SystemClock()
    ingest = loaded.config.ingest
    app[keys.RATE_LIMITER] = RateLimiter(ingest.rate_limit, ingest.rate_burst)
    app.cleanup_ctx.append(_components)
    app.on_shutdown.append(_draining)
    handlers.add_routes(app)
    rest.add_routes(app)
    openapi.add_routes(app)
    health.add_routes(app)
    return app


async def _draining(app: web.Application) -> None:
    app[keys.HEALTH].draining = True


class DormantLoader:
    """Brings back an alert resolved so long ago that it left memory. Rare, so a blocking point read on a
    read-only connection of its own."""

    def __init__(self, db: Database) -> None:
        self._conn = connect(db.path, read_only=True)

    def close(self) -> None:
        self._conn.close()

    def __call__(self, fingerprint: str) -> Alert | None:
        try:
            return load_alert(self._conn, fingerprint)
        except sqlite3.Error as exc:
            log.warning("could not read stored alert %s, starting it afresh: %s", fingerprint, exc)
            return None


async def _components(app: web.Application) -> AsyncIterator[None]:
    loaded = app[keys.CONFIG]
    cfg = loaded.config
    clock = app[CLOCK]
    db = Database(loaded.db_path, synchronous=cfg.storage.synchronous)
    await asyncio.to_thread(db.open)
    writer = GroupCommitWriter(db, flush_interval=cfg.storage.flush_interval)
    counters = CounterStore(writer)
    load_dormant = DormantLoader(db)
    alerts = AlertTable(writer, cfg.alerts, load_dormant=load_dormant)
    correlator = Correlator(writer, loaded.correlation, alerts, counters)
    now = clock.now()
    snapshot = await asyncio.to_thread(
        db.load,
        now=now,
        alert_retention=cfg.alerts.resolved_retention,
        reopen_window=loaded.correlation.reopen_window,
    )
    counters.restore(snapshot.counters)
    alerts.restore(snapshot.active_alerts, snapshot.dormant_fingerprints, now)
    correlator.restore(snapshot.incidents, snapshot.next_incident_id)
    for reason in handlers.REJECT_REASONS:
        counters.ensure("itsmd_alerts_rejected_total", (("reason", reason),))
    for group in auth.GROUPS:
        counters.ensure(auth.FAILURES, (("group", group),))
    ingest_duration = PersistedHistogram(counters, "itsmd_ingest_duration_seconds", INGEST_BUCKETS)
    pipeline = Pipeline(
        alerts,
        correlator,
        writer,
        counters,
        clock,
        commit_timeout=cfg.ingest.commit_timeout,
        max_pending=cfg.ingest.max_pending_changes,
    )
    reader = Reader(loaded.db_path)

    registry = CollectorRegistry(auto_describe=True)
    registry.register(
        ItsmdCollector(
            counters,
            ingest_duration,
            version=__version__,
            open_incidents=correlator.open_by_service,
            firing_alerts=lambda: alerts.firing_count,
            store_up=lambda: writer.healthy,
        )
    )
    ProcessCollector(registry=registry)
    app[keys.PIPELINE] = pipeline
    app[keys.COUNTERS] = counters
    app[keys.INGEST_DURATION] = ingest_duration
    app[keys.READER] = reader
    app[health.REGISTRY] = registry

    tasks = TaskRegistry()
    tasks.start("writer", writer.run())
    tasks.every("sweep", cfg.alerts.sweep_interval, pipeline.sweep)
    tasks.every("checkpoint", CHECKPOINT_INTERVAL, writer.checkpoint)
    app[keys.HEALTH].started = True
    log.info(
        "store open at %s: %d alerts in memory (%d firing), %d incidents in memory",
        loaded.db_path,
        len(alerts),
        alerts.firing_count,
        len(snapshot.incidents),
    )
    try:
        yield
    finally:
        app[keys.HEALTH].draining = True
        await tasks.cancel("sweep", "checkpoint")
        writer.close()
        if await tasks.wait("writer", cfg.shutdown_timeout):
            log.info("writer drained: everything acknowledged is committed")
        await tasks.close()
        reader.close()
        writer.shutdown_thread()
        load_dormant.close()
        await asyncio.to_thread(db.close)
        log.info("store closed")
