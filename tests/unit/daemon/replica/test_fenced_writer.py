"""The group-commit writer on a fenced PostgreSQL store: a refused batch is not retried, its waiters get 503
at once, and the replica is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from daemon.errors import StoreUnavailable
from daemon.storage.database import Batch
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.writer import GroupCommitWriter


class Counting:
    """A stage with one counter: each bump must be durable before it is acknowledged."""

    def __init__(self, writer: GroupCommitWriter) -> None:
        self.value = 0.0
        self._dirty = False
        self._writer = writer
        writer.add_collector(self.collect)

    def bump(self) -> int:
        self.value += 1
        self._dirty = True
        return self._writer.changed()

    def collect(self, batch: Batch, lazy: bool) -> None:
        if self._dirty:
            batch.counters[("test_bumps_total", "")] = self.value
            self._dirty = False


def set_epoch(dsn: str, epoch: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET epoch = %s WHERE id = 1", (epoch,))


def stored(dsn: str) -> float | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT value FROM counters WHERE name = 'test_bumps_total'").fetchone()
    return None if row is None else float(row[0])


@pytest.fixture
async def backend(store_dsn: str) -> AsyncIterator[PostgresBackend]:
    set_epoch(store_dsn, 7)
    db = PostgresBackend(store_dsn)
    db.fence_epoch = 7
    await asyncio.to_thread(db.open)
    yield db
    await asyncio.to_thread(db.close)


async def test_a_fenced_batch_stops_the_writer_and_answers_its_waiters(
    backend: PostgresBackend, store_dsn: str
) -> None:
    fenced: list[str] = []
    writer = GroupCommitWriter(backend, flush_interval=0.05, on_fenced=lambda: fenced.append("fenced"))
    stage = Counting(writer)
    task = asyncio.create_task(writer.run())
    try:
        await writer.durable(stage.bump(), within=5)
        assert stored(store_dsn) == 1.0
        set_epoch(store_dsn, 8)  # another replica took the lease
        seq = stage.bump()
        with pytest.raises(StoreUnavailable, match="not the leader any more"):
            # Well within the commit timeout: the answer comes from the refusal, not from waiting it out.
            await writer.durable(seq, within=30)
        await asyncio.wait_for(task, 5)  # the loop ended by itself: nothing more is tried
        assert fenced == ["fenced"]
        assert not writer.healthy
        assert writer.held_rows == 0
        with pytest.raises(StoreUnavailable, match="not the leader any more"):
            await writer.durable(stage.bump(), within=30)
        with pytest.raises(StoreUnavailable):
            await writer.flush()
        assert stored(store_dsn) == 1.0  # nothing of the refused batches
    finally:
        writer.close()
        await asyncio.wait_for(task, 5)
        writer.shutdown_thread()
