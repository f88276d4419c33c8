"""A leader frozen (SIGSTOP) inside a fenced write: it must not keep the lease from the next leader, and when it
wakes its write is refused (Fenced), not committed. The freeze is the writer's own thread stopping while it
produces the batch's rows, so the backend's real transaction is left open at that point."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from daemon.errors import Fenced
from daemon.replica.lease import Lease
from daemon.storage import alerts as alert_records
from daemon.storage.database import Batch
from daemon.storage.postgres.backend import PostgresBackend
from tests.unit.daemon.ingest.conftest import eventually
from tests.unit.daemon.storage.postgres.test_backend import alert


class Freezing(dict[str, Any]):
    """Rows whose first reading stops after the first row until thawed: the writer thread frozen mid-batch."""

    def __init__(self, rows: dict[str, Any]) -> None:
        super().__init__(rows)
        self.frozen = threading.Event()
        self.thawed = threading.Event()

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        first = not self.frozen.is_set()
        for n, row in enumerate(super().values()):
            if first and n == 1:
                self.frozen.set()
                assert self.thawed.wait(30), "never thawed"
            yield row


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '20s'")  # a guard for the test, not the bound under test
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description is not None else []


def writer_in(dsn: str, state: str, query: str) -> bool:
    found = sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = %s "
        "AND query LIKE %s AND pid <> pg_backend_pid()",
        (state, query + "%"),
    )
    return bool(found[0][0])


@pytest.fixture
def backend(postgres_dsn: str) -> Iterator[PostgresBackend]:
    b = PostgresBackend(postgres_dsn, pool_min=1, pool_max=2, connect_timeout=5, idle_limit=0.5)
    b.open()
    yield b
    b.close()


async def test_a_writer_frozen_between_statements_is_ended_by_the_server_and_fenced_on_waking(
    backend: PostgresBackend, postgres_dsn: str
) -> None:
    sql(postgres_dsn, "UPDATE leader_lease SET epoch = 1, holder = 'a', expires_at = clock_timestamp()")
    backend.fence_epoch = 1
    batch = Batch()
    batch.alert_touches = Freezing({f"fp{n:05d}": alert_records.alert_touch_row(alert(n)) for n in (1, 2)})
    write = asyncio.create_task(asyncio.to_thread(backend.write, batch))
    await asyncio.to_thread(batch.alert_touches.frozen.wait, 10)
    await eventually(lambda: asyncio.to_thread(writer_in, postgres_dsn, "idle in transaction", "SELECT epoch"))
    # The takeover's epoch bump waits on the fence's share lock until the server ends the idle session
    # (idle_limit), not until the frozen client wakes.
    assert await asyncio.to_thread(sql, postgres_dsn, "UPDATE leader_lease SET epoch = 2 RETURNING epoch") == [(2,)]
    batch.alert_touches.thawed.set()
    with pytest.raises(Fenced, match="epoch is 2"):
        await write


async def test_a_writer_frozen_mid_copy_loses_the_lease_and_is_fenced_on_waking(
    backend: PostgresBackend, postgres_dsn: str
) -> None:
    old = Lease(postgres_dsn, holder="a", url="http://a:9797", duration=3.0, margin=0.5, timeout=2.0)
    new = Lease(postgres_dsn, holder="b", url="http://b:9797", duration=3.0, margin=0.5, timeout=2.0)
    try:
        backend.fence_epoch = await old.acquire()
        sql(postgres_dsn, "UPDATE leader_lease SET expires_at = clock_timestamp()")  # the lease ran out
        batch = Batch()
        batch.alerts = Freezing({f"fp{n:05d}": alert_records.alert_row(alert(n)) for n in range(3)})
        write = asyncio.create_task(asyncio.to_thread(backend.write, batch))
        await asyncio.to_thread(batch.alerts.frozen.wait, 10)
        await eventually(lambda: asyncio.to_thread(writer_in, postgres_dsn, "active", "COPY"))
        # No server timeout ends a session waiting for COPY data: the takeover ends it, in one acquire.
        assert await new.acquire() == 2
        batch.alerts.thawed.set()
        with pytest.raises(Fenced, match="epoch is 2"):
            await write
        assert sql(postgres_dsn, "SELECT count(*) FROM alerts") == [(0,)]
        assert await old.renew() is False
    finally:
        await old.close()
        await new.close()
