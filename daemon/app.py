"""Composition root: builds the stages, wires them together and owns their lifecycle.

The app never touches signals (cli.py does), so tests embed it with aiohttp's test server. Shutdown
order: the HTTP server stops accepting and drains in-flight requests (their commits still happen), then the
runbook engine stops (runs still going after the deadline are cancelled and journaled as interrupted, for the
next start's recovery), periodic tasks stop, the writer commits what is left within the deadline, the HTTP
client session of the runbook actions closes, and the store is closed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.registry import Collector

from daemon import __version__
from daemon.alerts.table import AlertTable
from daemon.api import auth, changes, health, keys, openapi, rest, runs
from daemon.api.errors import json_errors
from daemon.changes.ledger import ChangeLedger
from daemon.changes.model import ChangePolicy
from daemon.changes.reader import ChangeReader
from daemon.changes.store import load_changes
from daemon.clock import Clock, SystemClock
from daemon.config import Config, LoadedConfig
from daemon.correlate.incidents import Correlator
from daemon.ingest import handlers
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.collector import ItsmdCollector
from daemon.metrics.counters import CounterStore, PersistedHistogram
from daemon.model import Alert
from daemon.pipeline import Pipeline
from daemon.runbook.actions import ACTIONS
from daemon.runbook.config import secret_text
from daemon.runbook.engine import Engine
from daemon.runbook.journal import load_runs
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.metrics import RunbookMetrics, step_action
from daemon.runbook.triggers import Triggers
from daemon.storage.database import Database, connect, load_alert
from daemon.storage.queries import Reader
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry
from integrations.alertmanager.client import AlertmanagerClient
from integrations.prometheus.client import PrometheusClient

log = logging.getLogger(__name__)

INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CHECKPOINT_INTERVAL = 5.0
CLOCK = keys.CLOCK
LIBRARY = web.AppKey("runbook_library", RunbookLibrary)
ACTION_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
"""Each action bounds its own requests by the step timeout; the session only bounds connecting."""


def create_app(loaded: LoadedConfig, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        client_max_size=loaded.config.ingest.max_body_bytes,
        middlewares=[json_errors, auth.middleware(loaded.config.auth)],
    )
    app[keys.CONFIG] = loaded
    app[keys.HEALTH] = keys.Health()
    app[CLOCK] = clock or SystemClock()
    app[LIBRARY] = load_library(loaded)
    ingest = loaded.config.ingest
    app[keys.RATE_LIMITER] = RateLimiter(ingest.rate_limit, ingest.rate_burst)
    app.cleanup_ctx.append(_components)
    app.on_shutdown.append(_draining)
    handlers.add_routes(app)
    rest.add_routes(app)
    runs.add_routes(app)
    changes.add_routes(app)
    openapi.add_routes(app)
    health.add_routes(app)
    return app


async def _draining(app: web.Application) -> None:
    app[keys.HEALTH].draining = True


def load_library(loaded: LoadedConfig) -> RunbookLibrary:
    """The runbooks of config.runbooks.dir; ConfigError (file:line: key) if any is wrong. No folder: none."""
    folder = loaded.config.runbooks.dir
    if not folder.is_dir():
        log.info("no runbooks folder at %s: no runbooks loaded", folder)
        return RunbookLibrary()
    return RunbookLibrary.load_dir(folder)


def change_policy(library: RunbookLibrary, runbook: str) -> ChangePolicy:
    loaded = library.get(runbook)
    if loaded is None:
        raise KeyError(runbook)
    spec = loaded.spec
    return ChangePolicy(needs_approval=spec.approval.required, risk=spec.change.risk, declared=spec.change.type)


def integrations(
    cfg: Config, session: aiohttp.ClientSession
) -> tuple[PrometheusClient | None, AlertmanagerClient | None]:
    """The Prometheus and Alertmanager clients runbook steps use, for the sections that are configured."""
    prometheus = cfg.prometheus.client(session) if cfg.prometheus is not None else None
    alertmanager = cfg.alertmanager.client(session) if cfg.alertmanager is not None else None
    return prometheus, alertmanager


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

    tasks = TaskRegistry()
    auto = await _automation(app, db=db, writer=writer, counters=counters, correlator=correlator, tasks=tasks)
    _ensure_counters(counters)
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

    registry = _registry(
        ItsmdCollector(
            counters,
            ingest_duration,
            version=__version__,
            open_incidents=correlator.open_by_service,
            firing_alerts=lambda: alerts.firing_count,
            store_up=lambda: writer.healthy,
        ),
        auto.metrics,
    )
    app[keys.PIPELINE] = pipeline
    app[keys.COUNTERS] = counters
    app[keys.INGEST_DURATION] = ingest_duration
    app[keys.READER] = reader
    app[health.REGISTRY] = registry

    tasks.start("writer", writer.run())
    # After the writer runs: recovery journals what it decides and waits for that to be durable.
    await auto.engine.recover()
    tasks.every("sweep", cfg.alerts.sweep_interval, pipeline.sweep)
    tasks.every("checkpoint", CHECKPOINT_INTERVAL, writer.checkpoint)
    app[keys.HEALTH].started = True
    log.info(
        "store open at %s: %d alerts in memory (%d firing), %d incidents in memory, %d runbooks, %d runs recovered",
        loaded.db_path,
        len(alerts),
        alerts.firing_count,
        len(snapshot.incidents),
        len(app[LIBRARY].runbooks),
        auto.recovering,
    )
    try:
        yield
    finally:
        app[keys.HEALTH].draining = True
        # Before the writer drains: interrupted runs are journaled in what it writes last.
        await auto.engine.close(cfg.shutdown_timeout)
        await tasks.cancel("sweep", "checkpoint")
        writer.close()
        if await tasks.wait("writer", cfg.shutdown_timeout):
            log.info("writer drained: everything acknowledged is committed")
        await tasks.close()
        await auto.close()
        reader.close()
        writer.shutdown_thread()
        load_dormant.close()
        await asyncio.to_thread(db.close)
        log.info("store closed")


def _registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def _ensure_counters(counters: CounterStore) -> None:
    for reason in handlers.REJECT_REASONS:
        counters.ensure("itsmd_alerts_rejected_total", (("reason", reason),))
    for group in auth.GROUPS:
        counters.ensure(auth.FAILURES, (("group", group),))


@dataclass
class Automation:
    """The runbook engine and the stages around it: change ledger, metrics, and the actions' HTTP session."""

    engine: Engine
    metrics: RunbookMetrics
    session: aiohttp.ClientSession
    change_reader: ChangeReader
    recovering: int

    async def close(self) -> None:
        """After the engine and the writer stopped."""
        await self.session.close()
        self.change_reader.close()


async def _automation(
    app: web.Application,
    *,
    db: Database,
    writer: GroupCommitWriter,
    counters: CounterStore,
    correlator: Correlator,
    tasks: TaskRegistry,
) -> Automation:
    """Build the engine and its listeners and load their state; call before the writer starts."""
    cfg, clock, library = app[keys.CONFIG].config, app[CLOCK], app[LIBRARY]
    session = aiohttp.ClientSession(timeout=ACTION_HTTP_TIMEOUT)
    prometheus, alertmanager = integrations(cfg, session)
    engine = Engine(
        writer=writer,
        library=library,
        clock=clock,
        tasks=tasks,
        http=session,
        counters=counters,
        config=cfg.runbooks,
        prometheus=prometheus,
        alertmanager=alertmanager,
        escalate=lambda incident_id, text: _escalate(correlator, clock, incident_id, text),
        secrets={name: secret_text(source.secret) for name, source in cfg.runbooks.secrets.items()},
    )
    ledger = ChangeLedger(
        writer,
        counters,
        correlator,
        clock,
        suspect_window=cfg.runbooks.change_suspect_window,
        policy_of=lambda name: change_policy(library, name),
    )
    metrics = RunbookMetrics(
        counters,
        actions=ACTIONS,
        action_of=lambda runbook, step: step_action(library, runbook, step),
        breakers_open=engine.breakers_open,
        runbooks=library.names,
    )
    now = clock.now()
    runs_snapshot = await asyncio.to_thread(
        load_runs, db.conn, now=now, breaker_lookback=engine.breaker_lookback(), history=cfg.runbooks.history
    )
    ledger.restore(await asyncio.to_thread(load_changes, db.conn, now=now, window=cfg.runbooks.change_suspect_window))
    # The ledger hears of a run before anything else does, so a run's change exists before its first step.
    engine.subscribe(ledger.on_run_event)
    engine.subscribe(metrics.on_run_event)
    engine.restore(runs_snapshot)
    correlator.subscribe(ledger.on_incident_event)
    correlator.subscribe(Triggers(engine, correlator, clock).on_incident_event)
    app[keys.WRITER] = writer
    app[keys.ENGINE] = engine
    app[keys.CHANGES] = ledger
    app[keys.CHANGE_READER] = change_reader = ChangeReader(db.path)
    recovering = sum(1 for run in runs_snapshot.runs if run.active)
    return Automation(engine, metrics, session, change_reader, recovering)


def _escalate(correlator: Correlator, clock: Clock, incident_id: int, text: str) -> None:
    correlator.add_note(incident_id, clock.now(), "runbooks", text, kind="runbook_escalation")
