"""The leader's side of the inbox: bodies the followers committed, applied in order, exactly once in effect.

Each stored body goes through the pipeline as a direct request of its kind would (the same parsing, the same
counters, the alert table keyed by fingerprint). Rows are read in (transaction id, seq) order and only once
no transaction that could still add a row before them is open (daemon/storage/inbox.py says why seq order
alone loses rows). The cursor (the position of the last row applied) is two counters in the CounterStore,
`itsmd_inbox_applied_xact` and `itsmd_inbox_applied_seq`, set synchronously right after the row's alerts are
applied, so they are written in the same writer batch as what it changed (or a later one), never an earlier
one: a crash before that commit leaves the old cursor, and the next leader applies the same rows again, which
the alert table absorbs (the same fingerprints, the same states). Rows are deleted only once a committed
cursor covers them, a small batch at a time.

Woken by LISTEN itsmd_inbox (followers NOTIFY when they commit), with a poll as the fallback for a lost
notice or a broken listening connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.config import IngestConfig
from daemon.errors import Overloaded, RequestError, StoreUnavailable
from daemon.ingest import handlers
from daemon.pipeline import Pipeline
from daemon.replica import kinds
from daemon.storage import inbox

log = logging.getLogger(__name__)

CURSOR = "itsmd_inbox_applied_seq"
CURSOR_XACT = "itsmd_inbox_applied_xact"
"""The cursor's transaction id. A counter holds a float: exact for ids below 2**53 (a cluster would need
2**21 transaction id wraparounds to pass that)."""
HELD_RETRY = 0.05
"""Seconds before reading again when committed rows wait behind an open transaction (no notice may come)."""
REJECTED = "itsmd_alerts_rejected_total"
CONNECT_TIMEOUT = 3.0


class InboxConsumer:
    def __init__(
        self,
        dsn: str,
        pipeline: Pipeline,
        limits: IngestConfig,
        *,
        batch: int = 500,
        poll_interval: float = 1.0,
        delete_batch: int = 500,
    ) -> None:
        self._dsn = dsn
        self._pipeline = pipeline
        self._limits = limits
        self._batch = batch
        self._poll = poll_interval
        self._delete_batch = delete_batch
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._wake = asyncio.Event()
        self.cursor = inbox.Position(int(pipeline.counters.get(CURSOR_XACT)), int(pipeline.counters.get(CURSOR)))
        """The position of the last row applied in memory (committed with the next writer batch)."""
        self.committed = self.cursor
        """The last position whose effects and cursor are known durable: rows up to it may be deleted."""
        self.applied = 0
        self.refused = 0
        self.pending = 0
        self.oldest: float | None = None
        self.healthy = True

    async def step(self) -> int:
        """Apply the next stored bodies after the cursor; the writer batch that will hold them and the new
        cursor (0: nothing was there). Overloaded: the pipeline is full; the cursor stays before that row."""
        entries = await inbox.after(await self._connection(), self.cursor, self._batch)
        for entry in entries:
            self._apply(entry)
        return self._pipeline.writer.changed() if entries else 0

    def _apply(self, entry: inbox.Entry) -> None:
        row = entry.received
        counters = self._pipeline.counters
        try:
            parsed = kinds.parse(row.kind, row.body.encode(), self._limits, row.received_at, self._pipeline.alerts)
            alerts, own = handlers.drop_own(parsed)
            if own:
                counters.inc(handlers.LOOPED_BACK, (("source", (kinds.SOURCES[row.kind].name or "").lower()),), own)
            self._pipeline.apply(alerts, kinds.SOURCES[row.kind], row.source)
        except RequestError as exc:
            # The follower took it, so the leader's limits or held alerts differ from the follower's: refused
            # here as the same request sent here directly would have been.
            counters.inc(REJECTED, (("reason", exc.reason),))
            self.refused += 1
            log.warning(
                "inbox row %d (%s from %s, credential %s) refused by the leader: %s",
                entry.seq,
                row.kind,
                row.replica,
                row.principal or "-",
                exc,
            )
        # Both in the batch the row's changes are in. seq can go down: it is in order only within a transaction.
        counters.inc(CURSOR_XACT, (), entry.xact - self.cursor.xact)
        counters.inc(CURSOR, (), entry.seq - self.cursor.seq)
        self.cursor = entry.position
        self.applied += 1

    async def durable(self, seq: int) -> None:
        """Wait until writer batch `seq` (and the cursor in it) is committed, however long that takes."""
        cursor = self.cursor
        while True:
            try:
                await self._pipeline.writer.durable(seq, self._pipeline.commit_timeout)
                break
            except StoreUnavailable as exc:
                # A fenced writer answers at once: the pause keeps this from spinning until the app is stopped.
                log.warning("inbox: waiting for the store to commit up to seq %d: %s", cursor.seq, exc)
                await asyncio.sleep(self._poll)
        self.committed = max(self.committed, cursor)

    async def housekeeping(self) -> None:
        """Delete one small batch of applied rows; read the backlog for the lag metrics."""
        conn = await self._connection()
        if self.committed > inbox.START:
            await inbox.delete_through(conn, self.committed, self._delete_batch)
        self.pending, self.oldest = await inbox.backlog(conn, self.cursor)

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="inbox-listen")
        backoff = 0.1
        try:
            while True:
                self._wake.clear()
                try:
                    seq = await self.step()
                    if seq:
                        await self.durable(seq)
                    await self.housekeeping()
                except Overloaded as exc:
                    log.info("inbox: pipeline full, retrying: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    if self.healthy:
                        log.error("inbox: cannot read the inbox: %s", exc)
                    self.healthy = False
                    await self._disconnect()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                self.healthy = True
                backoff = 0.1
                if seq and self.pending:
                    continue  # more than one batch waits
                # Rows committed but not readable yet wait for an older transaction, which may not notify.
                wait = min(self._poll, HELD_RETRY) if self.pending and not seq else self._poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._disconnect()

    async def close(self) -> None:
        """Close the reading connection (run() closes its own when cancelled)."""
        await self._disconnect()

    async def _listen(self) -> None:
        """Set the wake event on every notice; reconnect after a failure (the poll covers the gap)."""
        while True:
            try:
                conn = await self._connect()
                try:
                    await inbox.listen(conn)
                    self._wake.set()  # rows may have come while no one listened
                    async for _ in conn.notifies():
                        self._wake.set()
                finally:
                    await conn.close()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.info("inbox: listening for notices failed, polling meanwhile: %s", exc)
                await asyncio.sleep(self._poll)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)),
            CONNECT_TIMEOUT,
        )

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = await self._connect()
        self._conn = conn
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


class InboxCollector(Collector):
    """The leader's view of the inbox: how far behind it is."""

    def __init__(self, consumer: InboxConsumer) -> None:
        self._consumer = consumer

    def collect(self) -> Iterable[Metric]:
        c = self._consumer
        yield GaugeMetricFamily(
            "itsmd_inbox_pending", "Inbox rows not applied yet (at the last read).", value=c.pending
        )
        age = max(0.0, time.time() - c.oldest) if c.oldest is not None else 0.0
        yield GaugeMetricFamily(
            "itsmd_inbox_oldest_pending_age_seconds", "Age of the oldest inbox row not applied yet.", value=age
        )
        yield GaugeMetricFamily("itsmd_inbox_applied_seq", "The last inbox seq applied.", value=c.cursor.seq)
        applied = CounterMetricFamily("itsmd_inbox_applied", "Inbox rows applied since this leader started.")
        applied.add_metric([], c.applied)
        yield applied
        refused = CounterMetricFamily("itsmd_inbox_refused_by_leader", "Inbox rows the leader's parsing refused.")
        refused.add_metric([], c.refused)
        yield refused
        yield GaugeMetricFamily("itsmd_inbox_up", "1 while the leader can read the inbox.", value=int(c.healthy))
