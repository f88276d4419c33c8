"""Building the outbox at start: its pending deliveries from the store, its listener, its sending task."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from daemon.clock import Clock
from daemon.correlate.incidents import Correlator
from daemon.drills.runner import DrillRunner
from daemon.metrics.counters import CounterStore
from daemon.notify.outbox.config import WebhookReceiver
from daemon.notify.outbox.delivery import Deliverer
from daemon.notify.outbox.incidents import IncidentNotices
from daemon.notify.outbox.metrics import OutboxCollector
from daemon.notify.outbox.outbox import Outbox
from daemon.notify.outbox.records import DrillNotices, ProblemNotices, RunNotices
from daemon.problems.manager import Problems
from daemon.runbook.engine import Engine
from daemon.storage.outbox import load_pending
from daemon.storage.sql import Backend
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

TASK = "outbox"
PRUNE_TASK = "outbox-prune"
PRUNE_INTERVAL = 3600.0


@dataclass
class Webhooks:
    outbox: Outbox
    collector: OutboxCollector
    session: aiohttp.ClientSession

    def start(self, tasks: TaskRegistry, clock: Clock) -> None:
        """After the writer runs: deliveries are only sent once they are committed."""
        if self.outbox.receivers:
            tasks.start(TASK, Deliverer(self.outbox, self.session, clock).run())
        tasks.every(PRUNE_TASK, PRUNE_INTERVAL, lambda: self.outbox.prune(clock.now()))

    async def close(self, tasks: TaskRegistry) -> None:
        """Before the writer drains, so the outcome of the attempts made is written."""
        await tasks.cancel(TASK, PRUNE_TASK)
        await self.session.close()


@dataclass(frozen=True)
class Sources:
    """The stages whose events become webhooks."""

    correlator: Correlator
    problems: Problems
    engine: Engine
    drills: DrillRunner


async def open_webhooks(
    db: Backend,
    *,
    writer: GroupCommitWriter,
    counters: CounterStore,
    clock: Clock,
    sources: Sources,
    receivers: tuple[WebhookReceiver, ...],
) -> Webhooks:
    """Call before the writer starts, after the engine restored its runs."""
    correlator = sources.correlator
    outbox = Outbox(
        writer,
        counters,
        clock,
        receivers,
        team_of=lambda service: correlator.ruleset.catalogue.get(service).team,
    )
    pending, next_seq = await asyncio.to_thread(load_pending, db.primary)
    outbox.restore(pending, next_seq)
    correlator.subscribe(IncidentNotices(outbox, correlator.get).on_incident_event)
    runs = RunNotices(outbox)
    runs.restore(sources.engine.runs())
    sources.engine.subscribe(runs.on_run_event)
    sources.problems.listeners.append(ProblemNotices(outbox).on_problem)
    sources.drills.end_listeners.append(DrillNotices(outbox).on_drill_ended)
    return Webhooks(outbox, OutboxCollector(counters, outbox, clock), aiohttp.ClientSession())
