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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.registry import Collector

from daemon import __version__, console, reload
from daemon.alerts.evidence import EndFinder, LastSeen, PrometheusEnds
from daemon.alerts.stored import StoredAlerts
from daemon.alerts.table import AlertTable
from daemon.api import auth, health, keys, table, webhooks
from daemon.api.errors import json_errors
from daemon.audit import AuditLog
from daemon.audit.metrics import AuditCollector
from daemon.audit.start import open_audit
from daemon.availability.tracker import AvailabilityCollector, AvailabilityTracker
from daemon.changes.ledger import ChangeLedger
from daemon.changes.model import ChangePolicy
from daemon.clock import Clock, SystemClock
from daemon.config import Config, LoadedConfig
from daemon.correlate.incidents import Correlator
from daemon.correlate.metrics import IncidentCollector
from daemon.drills.metrics import DrillCollector
from daemon.drills.runner import DrillRunner
from daemon.drills.schedule import DrillSchedule
from daemon.drills.spec import Drill
from daemon.housekeeping.job import Housekeeping
from daemon.housekeeping.metrics import HousekeepingCollector
from daemon.ingest import handlers
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.collector import ItsmdCollector
from daemon.metrics.counters import CounterStore, PersistedHistogram
from daemon.notify.outbox.outbox import Outbox
from daemon.notify.outbox.start import Sources as WebhookSources
from daemon.notify.outbox.start import Webhooks, open_webhooks
from daemon.notify.publish.publisher import Publisher, PublisherCollector
from daemon.notify.publish.states import Links, Sources
from daemon.pipeline import Pipeline
from daemon.problems.manager import Problems
from daemon.replica.inbox import InboxCollector, InboxConsumer
from daemon.replica.metrics import ReplicaCollector
from daemon.replica.state import REPLICA, ReplicaState, fence
from daemon.report.produce import MonthlyReports
from daemon.runbook.actions import ACTIONS
from daemon.runbook.config import secret_text
from daemon.runbook.digest import load_key as load_digest_key
from daemon.runbook.engine import Engine
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.metrics import RunbookMetrics, step_action
from daemon.runbook.triggers import Triggers
from daemon.scheduler.scheduler import Scheduler
from daemon.storage.alerts import active_alert_pages
from daemon.storage.backends import backend_for
from daemon.storage.changes import load_changes
from daemon.storage.counters import load_counters
from daemon.storage.drills import load_drill_state
from daemon.storage.incidents import load_incidents, recent_signatures
from daemon.storage.problems import load_problems
from daemon.storage.reader import Reader
from daemon.storage.runs import load_runs
from daemon.storage.sql import Backend
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
SCHEDULER = web.AppKey("scheduler", Scheduler)
INBOX_DSN = web.AppKey("inbox_dsn", str)
INBOX = web.AppKey("inbox", InboxConsumer)
AVAILABILITY = web.AppKey("availability", AvailabilityTracker)
AVAILABILITY_COMPACT = 600.0
"""How often old outages are folded into totals; any interval works, it only bounds memory."""
AUDIT_ANCHOR_INTERVAL = 1.0
"""How far the anchor may lag the committed audit chain: deleting newer events than it holds goes unnoticed."""
REPORT_JOB = "monthly-report"
HOUSEKEEPING_JOB = "housekeeping"
HOUSEKEEPING = web.AppKey("housekeeping", Housekeeping)
PUBLISH_TASK = "notify-publish"
INCIDENT_TIMERS = "incidents"
"""The scheduler job that wakes the correlator for SLA deadlines, flapping and closes."""


def create_app(
    loaded: LoadedConfig,
    *,
    clock: Clock | None = None,
    inbox_dsn: str | None = None,
    replica: ReplicaState | None = None,
) -> web.Application:
    """`inbox_dsn` (PostgreSQL with replicas): this replica leads, and applies what followers committed to the
    inbox there (daemon/replica/inbox.py). `replica`: this process as the leader of replicas (its epoch fences
    the store); None for a single node."""
    clock = clock or SystemClock()
    authenticator = auth.Authenticator(loaded.config.auth, clock)
    app = web.Application(
        client_max_size=loaded.config.ingest.max_body_bytes,
        middlewares=[json_errors, auth.middleware(authenticator)],
    )
    app[keys.CONFIG] = loaded
    app[REPLICA] = replica or ReplicaState.single_node(loaded.config)
    app[keys.HEALTH] = keys.Health()
    app[CLOCK] = clock
    if inbox_dsn is not None:
        app[INBOX_DSN] = inbox_dsn
    app[auth.AUTHENTICATOR] = authenticator
    app[LIBRARY] = load_library(loaded)
    ingest = loaded.config.ingest
    app[keys.RATE_LIMITER] = RateLimiter(ingest.rate_limit, ingest.rate_burst)
    app.cleanup_ctx.append(_components)
    app.on_shutdown.append(_draining)
    console.setup(app, loaded.config, app[CLOCK])
    table.add_routes(app)
    return app


async def _draining(app: web.Application) -> None:
    app[keys.HEALTH].draining = True


def load_library(loaded: LoadedConfig) -> RunbookLibrary:
    """The runbooks of config.runbooks.dir; ConfigError (file:line: key) if any is wrong. No folder: none."""
    return RunbookLibrary.load_configured(loaded.config.runbooks.dir)


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


def _end_finder(cfg: Config, session: aiohttp.ClientSession) -> EndFinder:
    """Where an expired alert's end comes from: Prometheus' ALERTS series when configured, else last-seen."""
    if cfg.prometheus is None:
        return LastSeen()
    return PrometheusEnds(cfg.prometheus.client(session), timeout=cfg.prometheus.timeout)


async def _open_store(loaded: LoadedConfig, replica: ReplicaState) -> Backend:
    backend = backend_for(loaded)
    fence(backend, replica)  # the leader of replicas writes under its epoch only
    await asyncio.to_thread(backend.open)
    return backend


def _restore_alerts(db: Backend, alerts: AlertTable, *, now: float, retention: float) -> None:
    """The active alerts into memory, read a page at a time (a reader: PostgreSQL's paged read holds a
    transaction open, which the writer's connection must not)."""
    sql = db.reader()
    try:
        for page in active_alert_pages(sql, now=now, retention=retention):
            alerts.restore(page, now)
    finally:
        sql.close()


async def _components(app: web.Application) -> AsyncIterator[None]:  # noqa: PLR0915 (the stages, in start order)
    loaded = app[keys.CONFIG]
    cfg = loaded.config
    clock = app[CLOCK]
    db = await _open_store(loaded, app[REPLICA])
    try:
        writer = GroupCommitWriter(db, flush_interval=cfg.storage.flush_interval, on_fenced=app[REPLICA].on_fenced)
        writer.add_commit_listener(app[console.LIVE].on_commit)
        counters = CounterStore(writer)
        stored_alerts = StoredAlerts(db)
        alerts = AlertTable(
            writer, cfg.alerts, load_stored=stored_alerts, left_memory=stored_alerts.left_memory, clock=clock
        )
        audit = await open_audit(db, writer, loaded.audit_key_file, clock.now())
        problems = Problems(writer, counters, audit)
        now = clock.now()
        stored_counters = await asyncio.to_thread(load_counters, db.primary)
        # Counters first: the correlator makes its series exist at 0 and must see the stored values.
        counters.restore(stored_counters)
        correlator = Correlator(
            writer,
            loaded.rules,
            alerts,
            counters,
            audit=audit,
            problems=problems,
            # The thresholds of the published ItsmdSlaAtRisk: one setting for both (notify is not reloaded).
            at_risk_share=cfg.notify.publish.at_risk_share,
        )
        # In a thread, a page at a time: nothing else uses the table before the stages start.
        await asyncio.to_thread(_restore_alerts, db, alerts, now=now, retention=cfg.alerts.resolved_retention)
        restored = await _restore_records(db, correlator, problems, now)
        availability = await _availability(app, db, correlator, now)

        tasks = TaskRegistry()
        auto = await _automation(
            app, db=db, writer=writer, counters=counters, correlator=correlator, tasks=tasks, audit=audit
        )
        notices = await _notifications(
            db, cfg, auto=auto, correlator=correlator, problems=problems, writer=writer, counters=counters, clock=clock
        )
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
            end_finder=_end_finder(cfg, auto.session),
        )
        reader = Reader(db)

        reloader = reload.Reloader(
            cfg.rules_dir,
            correlator,
            clock,
            runbooks=(cfg.runbooks.dir, app[LIBRARY]),
            auth=(loaded.path, app[auth.AUTHENTICATOR]),
        )
        reloader.runbook_listeners.append(lambda _: auto.metrics.ensure_runbooks())
        registry = _registry(
            pipeline,
            ingest_duration,
            reloader,
            auto.metrics,
            DrillCollector(counters, auto.drills),
            AvailabilityCollector(availability),
            AuditCollector(audit),
            HousekeepingCollector(_housekeeping(app, db, writer, correlator)),
            ReplicaCollector(app[REPLICA]),
            app[auth.AUTHENTICATOR],
            *notices.collectors,
            *_inbox(app, pipeline),
        )
        scheduler = _scheduler(loaded, db, correlator, clock, app[HOUSEKEEPING])
        _expose(
            app,
            pipeline=pipeline,
            ingest_duration=ingest_duration,
            reader=reader,
            registry=registry,
            reloader=reloader,
            scheduler=scheduler,
            outbox=notices.webhooks.outbox,
        )

        _start_background(tasks, pipeline, scheduler, reloader, cfg.alerts.sweep_interval, availability=availability)
        _keep_stored_filter(tasks, stored_alerts, cfg.alerts.sweep_interval)
        tasks.every("audit-anchor", AUDIT_ANCHOR_INTERVAL, audit.anchor)
        notices.start(tasks, clock)
        _schedule_drills(app, scheduler, reloader, auto.drills, correlator.ruleset.drills)
        # After the writer runs: recovery journals what it decides and waits for that to be durable.
        await auto.engine.recover()
        _start_inbox(app, tasks)
        app[keys.HEALTH].started = True
        log.info(
            "store open at %s: %d alerts in memory (%d firing), %d incidents and %d problems in memory, "
            "%d runbooks, %d runs recovered",
            db.description,
            len(alerts),
            alerts.firing_count,
            *restored,
            len(app[LIBRARY].runbooks),
            auto.recovering,
        )
    except BaseException:
        # Nothing started keeps the store: a replica whose leader app fails goes on without a leaked session.
        await asyncio.to_thread(db.close)
        raise
    try:
        yield
    finally:
        app[keys.HEALTH].draining = True
        await _shut_down(
            app[REPLICA].shutdown_deadline(cfg.shutdown_timeout),
            auto=auto,
            scheduler=scheduler,
            tasks=tasks,
            writer=writer,
            hooks=notices.webhooks,
        )
        await audit.anchor()  # the writer has drained: the head of its last commit
        reader.close()
        stored_alerts.close()
        await asyncio.to_thread(db.close)
        log.info("store closed")


@dataclass
class Notifications:
    """What tells people: itsmd's states published to Alertmanagers, and signed webhooks from the outbox."""

    publisher: Publisher
    webhooks: Webhooks
    counters: CounterStore

    @property
    def collectors(self) -> tuple[Collector, ...]:
        return (PublisherCollector(self.publisher, self.counters), self.webhooks.collector)

    def start(self, tasks: TaskRegistry, clock: Clock) -> None:
        if self.publisher.targets:
            tasks.start(PUBLISH_TASK, self.publisher.run())
        self.webhooks.start(tasks, clock)


async def _notifications(
    db: Backend,
    cfg: Config,
    *,
    auto: Automation,
    correlator: Correlator,
    problems: Problems,
    writer: GroupCommitWriter,
    counters: CounterStore,
    clock: Clock,
) -> Notifications:
    """Build both notification channels; call before the writer starts (the outbox loads its backlog)."""
    hooks = await open_webhooks(
        db,
        writer=writer,
        counters=counters,
        clock=clock,
        sources=WebhookSources(correlator, problems, auto.engine, auto.drills),
        receivers=cfg.notify.webhooks,
    )
    return Notifications(_publisher(cfg, auto, correlator, counters, clock), hooks, counters)


async def _shut_down(
    deadline: float,
    *,
    auto: Automation,
    scheduler: Scheduler,
    tasks: TaskRegistry,
    writer: GroupCommitWriter,
    hooks: Webhooks,
) -> None:
    """Stop what produces writes, then let the writer commit what is left within the deadline."""
    # Before the writer drains: interrupted runs are journaled in what it writes last.
    await auto.engine.close(deadline)
    await scheduler.shutdown()
    auto.drills.close()
    await tasks.cancel("inbox", "sweep", "checkpoint", "reload", "availability")
    await hooks.close(tasks)
    writer.close()
    if await tasks.wait("writer", deadline):
        log.info("writer drained: everything acknowledged is committed")
    await tasks.close()
    await auto.close()
    writer.shutdown_thread()


def _expose(
    app: web.Application,
    *,
    pipeline: Pipeline,
    ingest_duration: PersistedHistogram,
    reader: Reader,
    registry: CollectorRegistry,
    reloader: reload.Reloader,
    scheduler: Scheduler,
    outbox: Outbox,
) -> None:
    """Publish the components the handlers use."""
    app[keys.PIPELINE] = pipeline
    app[keys.COUNTERS] = pipeline.counters
    app[keys.INGEST_DURATION] = ingest_duration
    app[keys.READER] = reader
    app[health.REGISTRY] = registry
    app[reload.RELOADER] = reloader
    app[SCHEDULER] = scheduler
    app[webhooks.OUTBOX] = outbox


def _inbox(app: web.Application, pipeline: Pipeline) -> list[Collector]:
    """The consumer of the followers' inbox when create_app was given its database; its metrics."""
    dsn = app.get(INBOX_DSN)
    if dsn is None:
        return []
    app[INBOX] = consumer = InboxConsumer(dsn, pipeline, app[keys.CONFIG].config.ingest)
    return [InboxCollector(consumer)]


def _start_inbox(app: web.Application, tasks: TaskRegistry) -> None:
    """Like a direct request, an inbox row is applied only once recovery is done."""
    if INBOX in app:
        tasks.start("inbox", app[INBOX].run())


async def _availability(app: web.Application, db: Backend, correlator: Correlator, now: float) -> AvailabilityTracker:
    """The availability tracker, loaded from the stored incident history; call before the writer starts."""
    tracker = AvailabilityTracker(
        lambda: correlator.ruleset.catalogue, app[CLOCK], app[keys.CONFIG].config.availability.windows
    )
    await asyncio.to_thread(tracker.load, db.primary, now)
    correlator.subscribe(tracker.on_incident_event)
    app[AVAILABILITY] = tracker
    return tracker


def _housekeeping(app: web.Application, db: Backend, writer: GroupCommitWriter, correlator: Correlator) -> Housekeeping:
    cfg = app[keys.CONFIG].config
    job = app[HOUSEKEEPING] = Housekeeping(
        db,
        writer,
        app[CLOCK],
        cfg.retention,
        catalogue=lambda: correlator.ruleset.catalogue,
        windows=cfg.availability.windows,
        report_time_zone=cfg.reports.time_zone,
        commit_timeout=cfg.ingest.commit_timeout,
    )
    return job


def _scheduler(
    loaded: LoadedConfig, db: Backend, correlator: Correlator, clock: Clock, housekeeping: Housekeeping
) -> Scheduler:
    """The scheduler: housekeeping, and the monthly service report job when reports.dir is set (it reads
    through the daemon's own open store: a PostgreSQL backend hands out readers only once open)."""
    scheduler = Scheduler(clock)
    scheduler.add_interval(HOUSEKEEPING_JOB, loaded.config.retention.interval, housekeeping.run)
    cfg = loaded.config.reports
    if cfg.dir is None:
        return scheduler
    job = MonthlyReports(
        db,
        lambda: correlator.ruleset.catalogue,
        cfg.dir,
        clock,
        time_zone=cfg.time_zone,
        formats=cfg.formats,
    )
    scheduler.add_cron(REPORT_JOB, cfg.schedule, job.run, timezone=cfg.time_zone)
    return scheduler


def _publisher(
    cfg: Config, auto: Automation, correlator: Correlator, counters: CounterStore, clock: Clock
) -> Publisher:
    """What posts itsmd's states to `notify.alertmanagers` (with none configured, it never runs: its
    metrics then show nothing published)."""
    notify = cfg.notify
    # Through the correlator each time: a reload replaces the catalogue.
    sources = Sources(
        incidents=correlator.incidents,
        team_of=lambda service: correlator.ruleset.catalogue.get(service).team,
        windows_of=lambda service: correlator.ruleset.catalogue.get(service).maintenance,
        runs=auto.engine.runs,
        breakers_open=auto.engine.breakers_open,
        problems=correlator.problems.problems,
        drills=lambda: list(auto.drills.last.values()),
    )
    clients = [am.client(auto.session) for am in notify.alertmanagers]
    links = Links(str(notify.external_url) if notify.external_url is not None else None)
    return Publisher(clients, sources=sources, config=notify.publish, links=links, clock=clock, counters=counters)


def _ensure_series(counters: CounterStore) -> None:
    for reason in handlers.REJECT_REASONS:
        counters.ensure("itsmd_alerts_rejected_total", (("reason", reason),))
    for source in ("alertmanager", "prometheus"):
        counters.ensure(handlers.LOOPED_BACK, (("source", source),))
    for group in auth.GROUPS:
        counters.ensure(auth.FAILURES, (("group", group),))


@dataclass
class Automation:
    """The runbook engine and the stages around it: change ledger, metrics, and the actions' HTTP session."""

    engine: Engine
    metrics: RunbookMetrics
    session: aiohttp.ClientSession
    recovering: int
    drills: DrillRunner

    async def close(self) -> None:
        """After the engine and the writer stopped."""
        await self.session.close()


async def _automation(
    app: web.Application,
    *,
    db: Backend,
    writer: GroupCommitWriter,
    counters: CounterStore,
    correlator: Correlator,
    tasks: TaskRegistry,
    audit: AuditLog,
) -> Automation:
    """Build the engine and its listeners and load their state; call before the writer starts."""
    cfg, clock, library = app[keys.CONFIG].config, app[CLOCK], app[LIBRARY]
    digest_key = await asyncio.to_thread(load_digest_key, app[keys.CONFIG].digest_key_file)
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
        digest_key=digest_key,
        audit=audit,
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
        load_runs, db.primary, now=now, breaker_lookback=engine.breaker_lookback(), history=cfg.runbooks.history
    )
    ledger.restore(
        await asyncio.to_thread(load_changes, db.primary, now=now, window=cfg.runbooks.change_suspect_window)
    )
    ledger.ensure_series(correlator.ruleset.catalogue.names())
    # The ledger hears of a run before anything else does, so a run's change exists before its first step.
    engine.subscribe(ledger.on_run_event)
    engine.subscribe(metrics.on_run_event)
    engine.restore(runs_snapshot)
    correlator.subscribe(ledger.on_incident_event)
    correlator.subscribe(Triggers(engine, correlator, clock).on_incident_event)
    app[keys.WRITER] = writer
    app[keys.ENGINE] = engine
    app[keys.CHANGES] = ledger
    recovering = sum(1 for run in runs_snapshot.runs if run.active)
    # After the engine's listeners: a drill hears a run ended once its change is closed.
    drill_runner = DrillRunner(
        writer=writer,
        engine=engine,
        clock=clock,
        tasks=tasks,
        counters=counters,
        incidents=correlator.incidents,
        prometheus=prometheus,
    )
    drill_runner.restore(await asyncio.to_thread(load_drill_state, db.primary))
    app[keys.DRILLS] = drill_runner
    return Automation(engine, metrics, session, recovering, drill_runner)


def _schedule_drills(
    app: web.Application,
    scheduler: Scheduler,
    reloader: reload.Reloader,
    runner: DrillRunner,
    drill_specs: Sequence[Drill],
) -> None:
    """A job per enabled drill on the running scheduler; a reload replaces them."""
    app[keys.DRILL_SCHEDULE] = schedule = DrillSchedule(scheduler, runner)
    _warn_unknown_drill_runbooks(drill_specs, app[LIBRARY])
    schedule.apply(drill_specs)
    reloader.listeners.append(lambda rules: _warn_unknown_drill_runbooks(rules.drills, app[LIBRARY]))
    reloader.listeners.append(lambda rules: schedule.apply(rules.drills))


def _warn_unknown_drill_runbooks(drill_specs: Sequence[Drill], library: RunbookLibrary) -> None:
    """`itsmd check` refuses these; a daemon started anyway records such drills as errors when they run."""
    for drill in drill_specs:
        if library.get(drill.runbook) is None:
            log.warning(
                "drill %s uses runbook %s, which is not loaded: its runs will end in error", drill.name, drill.runbook
            )


def _escalate(correlator: Correlator, clock: Clock, incident_id: int, text: str) -> None:
    correlator.add_note(incident_id, clock.now(), "runbooks", text, kind="runbook_escalation")


def _keep_stored_filter(tasks: TaskRegistry, stored: StoredAlerts, interval: float) -> None:
    """The filter of disk-only alerts: scanned once the daemon is up (until then new alerts read the store),
    scanned again when it outgrew its size (checked at the sweep's interval)."""
    tasks.start("stored-alerts-scan", stored.build())

    def rebuild() -> None:
        if stored.maintain():
            tasks.start("stored-alerts-scan", stored.build())

    tasks.every("stored-alerts-filter", interval, rebuild)


def _start_background(
    tasks: TaskRegistry,
    pipeline: Pipeline,
    scheduler: Scheduler,
    reloader: reload.Reloader,
    sweep_interval: float,
    *,
    availability: AvailabilityTracker,
) -> None:
    tasks.start("writer", pipeline.writer.run())
    tasks.every("availability", AVAILABILITY_COMPACT, lambda: availability.compact(pipeline.clock.now()))
    tasks.every("sweep", sweep_interval, pipeline.sweep)
    tasks.every("checkpoint", CHECKPOINT_INTERVAL, pipeline.writer.checkpoint)
    tasks.start("reload", reloader.watch())
    correlator = pipeline.correlator
    scheduler.add_due(INCIDENT_TIMERS, correlator)
    correlator.on_due = lambda at: scheduler.wake_at(INCIDENT_TIMERS, at)
    scheduler.start()


async def _restore_records(db: Backend, correlator: Correlator, problems: Problems, now: float) -> tuple[int, int]:
    """Incidents not closed, problems not resolved, and the recurrence history; (incidents, problems)."""
    incidents, next_incident_id = await asyncio.to_thread(load_incidents, db.primary)
    longest = max(r.recurrence.window for r in correlator.ruleset.rules)
    history = await asyncio.to_thread(recent_signatures, db.primary, now - longest)
    open_problems, next_problem_id = await asyncio.to_thread(load_problems, db.primary)
    correlator.restore(incidents, next_incident_id, now)
    problems.restore(open_problems, next_problem_id, history)
    return len(incidents), len(open_problems)


def _registry(
    pipeline: Pipeline, ingest_duration: PersistedHistogram, reloader: reload.Reloader, *more: Collector
) -> CollectorRegistry:
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
    for collector in more:
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def _problems_by_service_status(correlator: Correlator) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for p in correlator.problems.problems():
        key = (correlator.metrics.service(p.service), p.status.value)
        out[key] = out.get(key, 0) + 1
    return out
