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

from daemon import __version__, reload
from daemon.alerts.table import AlertTable
from daemon.api import auth, health, keys, manage, openapi, rest
from daemon.api.errors import json_errors
from daemon.audit import AuditLog
from daemon.clock import Clock, SystemClock
from daemon.config import LoadedConfig
from daemon.correlate.incidents import Correlator
from daemon.correlate.metrics import IncidentCollector
from daemon.correlate.store import load_incidents, recent_signatures
from daemon.ingest import handlers
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.collector import ItsmdCollector
from daemon.metrics.counters import CounterStore, PersistedHistogram
from daemon.model import Alert
from daemon.pipeline import Pipeline
from daemon.problems.manager import Problems
from daemon.problems.store import load_problems
from daemon.scheduler.scheduler import Scheduler
from daemon.storage.database import Database, connect, load_alert
from daemon.storage.queries import Reader
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

log = logging.getLogger(__name__)

INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CHECKPOINT_INTERVAL = 5.0
CLOCK = web.AppKey("clock", Clock)
SCHEDULER = web.AppKey("scheduler", Scheduler)
INCIDENT_TIMERS = "incidents"
"""The scheduler job that wakes the correlator for SLA deadlines, flapping and closes."""


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
    manage.add_routes(app)
    reload.add_routes(app)
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
    audit = AuditLog(writer)
    problems = Problems(writer, counters, audit)
    now = clock.now()
    snapshot = await asyncio.to_thread(
        db.load,
        now=now,
        alert_retention=cfg.alerts.resolved_retention,
        reopen_window=loaded.correlation.reopen_window,
    )
    # Counters first: the correlator makes its series exist at 0 and must see the stored values.
    counters.restore(snapshot.counters)
    correlator = Correlator(writer, loaded.rules, alerts, counters, audit=audit, problems=problems)
    alerts.restore(snapshot.active_alerts, snapshot.dormant_fingerprints, now)
    restored = await _restore_records(db, correlator, problems, now)
    _ensure_series(counters)
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

    reloader = reload.Reloader(cfg.rules_dir, correlator, clock)
    registry = _registry(pipeline, ingest_duration, reloader)
    app[keys.PIPELINE] = pipeline
    app[keys.COUNTERS] = counters
    app[keys.INGEST_DURATION] = ingest_duration
    app[keys.READER] = reader
    app[health.REGISTRY] = registry
    app[reload.RELOADER] = reloader
    scheduler = Scheduler(clock)
    app[SCHEDULER] = scheduler

    tasks = _start_background(pipeline, scheduler, reloader, cfg.alerts.sweep_interval)
    app[keys.HEALTH].started = True
    log.info(
        "store open at %s: %d alerts in memory (%d firing), %d incidents and %d problems in memory",
        loaded.db_path,
        len(alerts),
        alerts.firing_count,
        *restored,
    )
    try:
        yield
    finally:
        app[keys.HEALTH].draining = True
        await scheduler.shutdown()
        await tasks.cancel("sweep", "checkpoint", "reload")
        writer.close()
        if await tasks.wait("writer", cfg.shutdown_timeout):
            log.info("writer drained: everything acknowledged is committed")
        await tasks.close()
        reader.close()
        writer.shutdown_thread()
        load_dormant.close()
        await asyncio.to_thread(db.close)
        log.info("store closed")


def _ensure_series(counters: CounterStore) -> None:
    for reason in handlers.REJECT_REASONS:
        counters.ensure("itsmd_alerts_rejected_total", (("reason", reason),))
    for group in auth.GROUPS:
        counters.ensure(auth.FAILURES, (("group", group),))


def _start_background(
    pipeline: Pipeline, scheduler: Scheduler, reloader: reload.Reloader, sweep_interval: float
) -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.start("writer", pipeline.writer.run())
    tasks.every("sweep", sweep_interval, pipeline.sweep)
    tasks.every("checkpoint", CHECKPOINT_INTERVAL, pipeline.writer.checkpoint)
    tasks.start("reload", reloader.watch())
    correlator = pipeline.correlator
    scheduler.add_due(INCIDENT_TIMERS, correlator)
    correlator.on_due = lambda at: scheduler.wake_at(INCIDENT_TIMERS, at)
    scheduler.start()
    return tasks


async def _restore_records(db: Database, correlator: Correlator, problems: Problems, now: float) -> tuple[int, int]:
    """Incidents not closed, problems not resolved, and the recurrence history; (incidents, problems)."""
    incidents, next_incident_id = await asyncio.to_thread(load_incidents, db.conn)
    longest = max(r.recurrence.window for r in correlator.ruleset.rules)
    history = await asyncio.to_thread(recent_signatures, db.conn, now - longest)
    open_problems, next_problem_id = await asyncio.to_thread(load_problems, db.conn)
    correlator.restore(incidents, next_incident_id)
    problems.restore(open_problems, next_problem_id, history)
    return len(incidents), len(open_problems)


def _registry(pipeline: Pipeline, ingest_duration: PersistedHistogram, reloader: reload.Reloader) -> CollectorRegistry:
    """Each component's collector; all read memory only."""
    alerts, correlator, writer, counters = pipeline.alerts, pipeline.correlator, pipeline.writer, pipeline.counters
    registry = CollectorRegistry(auto_describe=True)
    registry.register(
        ItsmdCollector(
            counters,
            ingest_duration,
            version=__version__,
            firing_alerts=lambda: alerts.firing_count,
            store_up=lambda: writer.healthy,
        )
    )
    registry.register(
        IncidentCollector(
            counters,
            lambda: correlator.metrics,
            correlator.open_by_service_priority,
            lambda: _problems_by_service_status(correlator),
            lambda: len(correlator.flaps),
        )
    )
    registry.register(reloader)
    ProcessCollector(registry=registry)
    return registry


def _problems_by_service_status(correlator: Correlator) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for p in correlator.problems.problems():
        key = (correlator.metrics.service(p.service), p.status.value)
        out[key] = out.get(key, 0) + 1
    return out
