from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.errors import StoreUnavailable
from daemon.model import Source
from daemon.storage.alerts import load_alert
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    task = asyncio.create_task(s.writer.run())
    yield s
    s.writer.close()
    await asyncio.wait_for(task, 10)
    s.close()


async def submit(s: Stack, instance: str, now: float = T0) -> None:
    _, seq = s.table.apply([incoming(alertname="A", instance=instance)], Source.ALERTMANAGER, now)
    await s.writer.durable(seq, within=5)


async def test_acknowledged_alert_is_on_disk(running: Stack) -> None:
    await submit(running, "1")
    alert = load_alert(running.db.primary, incoming(alertname="A", instance="1").fingerprint)
    assert alert is not None
    assert alert.labels == {"alertname": "A", "instance": "1"}


async def test_concurrent_requests_share_commits(running: Stack) -> None:
    before = running.writer.commits
    await asyncio.gather(*(submit(running, str(i)) for i in range(200)))
    commits = running.writer.commits - before
    assert 1 <= commits < 20, commits
    count = running.db.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    assert count == 200


async def test_unchanged_resend_does_not_wait_for_a_commit(running: Stack) -> None:
    await submit(running, "1")
    _, seq = running.table.apply([incoming(alertname="A", instance="1")], Source.ALERTMANAGER, T0 + 5)
    assert seq == 0


async def test_failed_commit_is_retried_and_waiters_time_out(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    s.writer._max_backoff = 0.05
    task = asyncio.create_task(s.writer.run())
    try:
        # The file becomes unwritable: writes fail as they would on a full or read-only disk.
        s.db.conn.execute("PRAGMA query_only = ON")
        _, seq = s.table.apply([incoming(alertname="A", instance="1")], Source.ALERTMANAGER, T0)
        with pytest.raises(StoreUnavailable, match="store write failed"):
            await s.writer.durable(seq, within=0.5)
        assert not s.writer.healthy
        s.db.conn.execute("PRAGMA query_only = OFF")
        # The sender retries the same alert: it is unchanged in memory, yet it waits for the retried batch.
        _, seq2 = s.table.apply([incoming(alertname="A", instance="1")], Source.ALERTMANAGER, T0 + 1)
        assert seq2 == seq
        await s.writer.durable(seq2, within=5)
        assert s.writer.healthy
        assert load_alert(s.db.primary, incoming(alertname="A", instance="1").fingerprint) is not None
    finally:
        s.writer.close()
        await asyncio.wait_for(task, 10)
        s.close()


async def test_close_writes_what_is_left(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    task = asyncio.create_task(s.writer.run())
    s.table.apply([incoming(alertname="A", instance="1")], Source.ALERTMANAGER, T0)
    s.table.apply([incoming(alertname="A", instance="1")], Source.ALERTMANAGER, T0 + 7)  # lazy last_seen
    s.writer.close()
    await asyncio.wait_for(task, 10)
    row = s.db.conn.execute("SELECT last_seen, times_seen FROM alerts").fetchone()
    s.close()
    assert row == (T0 + 7, 2)
