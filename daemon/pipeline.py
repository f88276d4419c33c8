"""The ingest pipeline: alerts -> alert table -> correlation -> durable commit.

Each stage changes its own records in memory, synchronously, so one request's changes land in one write
batch; the request then waits for that batch to commit and only then is acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.alerts.evidence import EndFinder, LastSeen
from daemon.alerts.table import AlertTable
from daemon.clock import Clock
from daemon.correlate.incidents import Correlator
from daemon.errors import Overloaded
from daemon.metrics.counters import CounterStore
from daemon.model import IncomingAlert, Source
from daemon.storage.writer import GroupCommitWriter

RECEIVED = "itsmd_alerts_received_total"
SENDERS = ("alertmanager", "prometheus", "amtool", "other")
"""The `source` label of RECEIVED: who sent the alerts (the ingest path and the User-Agent tell), a bounded set.
Not the same as an alert's stored `sources`, which are the paths it came by."""
PATH_SENDERS = {Source.ALERTMANAGER: "alertmanager", Source.PROMETHEUS: "prometheus"}
"""Who sent it when the request does not say."""


class Pipeline:
    def __init__(
        self,
        alerts: AlertTable,
        correlator: Correlator,
        writer: GroupCommitWriter,
        counters: CounterStore,
        clock: Clock,
        *,
        commit_timeout: float,
        max_pending: int = 100_000,
        end_finder: EndFinder | None = None,
    ) -> None:
        self.alerts = alerts
        self.correlator = correlator
        self.writer = writer
        self.counters = counters
        self.clock = clock
        self._commit_timeout = commit_timeout
        self._max_pending = max_pending
        self.end_finder: EndFinder = end_finder or LastSeen()
        for sender in SENDERS:
            counters.ensure(RECEIVED, (("source", sender),))

    async def submit(self, batch: Sequence[IncomingAlert], source: Source, sender: str | None = None) -> None:
        """Apply and wait until durable; StoreUnavailable when the store cannot commit in time, Overloaded
        (nothing applied) when too many changes already wait for it. `sender` (one of SENDERS) is counted;
        without it the path's usual sender is."""
        seq = self.apply(batch, source, sender)
        if seq:
            await self.writer.durable(seq, self._commit_timeout)

    def apply(self, batch: Sequence[IncomingAlert], source: Source, sender: str | None = None) -> int:
        """submit() without the wait: the writer batch that will hold the changes (0: none to wait for).
        Synchronous, so a caller can mark more in the same batch (the inbox consumer's cursor)."""
        pending = self.alerts.pending_changes + self.writer.held_rows
        if pending >= self._max_pending:
            raise Overloaded(f"write queue full: {pending} changes wait for the store")
        now = self.clock.now()
        transitions, seq = self.alerts.apply(batch, source, now)
        if transitions:
            self.correlator.handle(transitions, now)
        label = sender if sender in SENDERS else PATH_SENDERS[source]
        self.counters.inc(RECEIVED, (("source", label),), len(batch))
        return seq

    @property
    def commit_timeout(self) -> float:
        return self._commit_timeout

    async def sweep(self) -> None:
        """Expire alerts nobody refreshes, each at the evidence of its end, and drop from memory what no
        longer needs to be there.

        Looking for the evidence may wait for Prometheus (bounded by the finder's deadline); ingest and the
        writer go on meanwhile. An alert re-sent while we wait is no longer due and is left alone."""
        now = self.clock.now()
        due = self.alerts.due(now)
        if due:
            episodes = {a.fingerprint: a.starts_at for a in due}
            ends = await self.end_finder.ends(due, now)
            now = self.clock.now()
            transitions = self.alerts.expire(now, ends, episodes=episodes)
            if transitions:
                self.correlator.handle(transitions, now)
        self.alerts.forget_resolved(now)
        self.correlator.forget_resolved(now)
