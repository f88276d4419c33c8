"""The group-commit writer on PostgreSQL: a batch written while the server refuses connections is held,
its waiters answer StoreUnavailable, and it is committed once the server takes connections again."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from daemon.errors import StoreUnavailable
from daemon.storage import alerts as alert_records
from daemon.storage.database import Batch
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.writer import GroupCommitWriter
from tests.unit.daemon.storage.postgres.test_backend import _admin_dsn, alert


def _allow_connections(dsn: str, allowed: bool, terminate: int | None = None) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(_admin_dsn(dsn), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if terminate is not None:
            admin.execute("SELECT pg_terminate_backend(%s)", (terminate,))


async def test_a_batch_is_held_while_postgres_is_away_and_committed_when_it_is_back(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1, connect_timeout=2)
    await asyncio.to_thread(backend.open)
    writer = GroupCommitWriter(backend, flush_interval=0.05, max_backoff=0.1)
    pending: list[tuple[Any, ...]] = []

    def collect(batch: Batch, lazy: bool) -> None:
        for row in pending:
            batch.alerts[row[0]] = row
        pending.clear()

    writer.add_collector(collect)
    task = asyncio.create_task(writer.run())
    try:
        pid = backend.primary.scalar("SELECT pg_backend_pid()")
        await asyncio.to_thread(_allow_connections, postgres_dsn, False, pid)
        try:
            pending.append(alert_records.alert_row(alert(1)))
            seq = writer.changed()
            with pytest.raises(StoreUnavailable, match="PostgreSQL"):
                await writer.durable(seq, within=1.0)
            assert not writer.healthy
            assert writer.held_rows == 1
        finally:
            await asyncio.to_thread(_allow_connections, postgres_dsn, True)
        await writer.durable(seq, within=15)
        assert writer.healthy
    finally:
        writer.close()
        await asyncio.wait_for(task, 10)
        writer.shutdown_thread()
    reader = backend.reader()
    try:
        assert reader.rows("SELECT fingerprint FROM alerts") == [{"fingerprint": "fp00001"}]
    finally:
        reader.close()
        backend.close()
    [failed] = [r for r in caplog.records if r.getMessage().startswith("store write failed")]
    assert not failed.exc_info  # an expected store error: its message, no stack trace
    assert "postgresql://" in failed.getMessage()
