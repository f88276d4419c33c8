"""The lease on a real PostgreSQL: one holder at a time, takeover only after expiry, a higher epoch each time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg.pq import ExecStatus

from daemon.errors import StoreUnavailable
from daemon.replica.lease import Lease

LEASE = 3.0


class FakeMonotonic:
    """The replica's own clock, frozen or moved on by the test: the database's clock runs as it does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def leases(store_dsn: str) -> AsyncIterator[Callable[..., Lease]]:
    made: list[Lease] = []

    def make(name: str, *, duration: float = LEASE, monotonic: Callable[[], float] | None = None) -> Lease:
        lease = Lease(
            store_dsn,
            holder=name,
            url=f"http://{name}:9797",
            duration=duration,
            margin=0.5,
            timeout=2.0,
            **({"monotonic": monotonic} if monotonic else {}),
        )
        made.append(lease)
        return lease

    yield make
    for lease in made:
        await lease.close()


def expire_now(dsn: str) -> None:
    """What the passing of the lease duration does to the row, without waiting for it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = clock_timestamp() - interval '1 second'")


async def test_only_one_of_two_acquires(leases: Callable[..., Lease]) -> None:
    a, b = leases("a"), leases("b")
    assert await a.acquire() == 1
    assert await b.acquire() is None
    assert a.held() and not b.held()
    row = await b.current()
    assert (row.epoch, row.holder, row.url, row.live) == (1, "a", "http://a:9797", True)


async def test_takeover_only_after_expiry_with_a_higher_epoch(leases: Callable[..., Lease], store_dsn: str) -> None:
    a, b = leases("a"), leases("b")
    assert await a.acquire() == 1
    assert await b.acquire() is None
    expire_now(store_dsn)
    assert await b.acquire() == 2
    expire_now(store_dsn)
    assert await a.acquire() == 3
    assert (await a.current()).holder == "a"


async def test_the_old_holders_renew_fails_after_takeover(leases: Callable[..., Lease], store_dsn: str) -> None:
    a, b = leases("a"), leases("b")
    await a.acquire()
    expire_now(store_dsn)
    assert await b.acquire() == 2
    assert await a.renew() is False
    assert not a.held()
    assert a.epoch is None
    assert await b.renew() is True
    assert (await b.current()).epoch == 2  # the failed renew changed nothing


async def test_renew_extends_the_lease_in_database_time(leases: Callable[..., Lease], store_dsn: str) -> None:
    a, b = leases("a", duration=1.0), leases("b")
    await a.acquire()
    with psycopg.connect(store_dsn) as conn:
        before = conn.execute("SELECT expires_at FROM leader_lease").fetchone()
    assert await a.renew()
    with psycopg.connect(store_dsn) as conn:
        after = conn.execute("SELECT expires_at FROM leader_lease").fetchone()
    assert before is not None and after is not None and after[0] > before[0]
    assert await b.acquire() is None


async def test_release_lets_the_other_acquire_at_once(leases: Callable[..., Lease]) -> None:
    a, b = leases("a", duration=60.0), leases("b")
    await a.acquire()
    await a.release()
    assert not a.held()
    assert (await b.current()).live is False
    assert await b.acquire() == 2
    assert await a.renew() is False


async def test_release_of_a_lease_taken_over_leaves_the_successor_alone(
    leases: Callable[..., Lease], store_dsn: str
) -> None:
    a, b, c = leases("a"), leases("b"), leases("c")
    await a.acquire()
    expire_now(store_dsn)
    await b.acquire()
    await a.release()
    assert await c.acquire() is None
    assert (await c.current()).holder == "b"


async def test_a_frozen_holder_loses_leadership_at_its_local_deadline(leases: Callable[..., Lease]) -> None:
    clock = FakeMonotonic()
    a = leases("a", duration=1.0, monotonic=clock)
    assert await a.acquire() == 1
    assert a.held()
    clock.now += 0.6  # past lease (1s) - margin (0.5s): frozen as by SIGSTOP, no renew happened
    assert not a.held()
    assert await a.renew() is False  # it does not renew what it no longer believes in


async def test_a_frozen_holder_loses_the_lease_to_another_replica(leases: Callable[..., Lease], store_dsn: str) -> None:
    a, b = leases("a", duration=1.0), leases("b")
    assert await a.acquire() == 1
    with psycopg.connect(store_dsn) as conn:  # wait out the lease in database time, as a frozen holder would
        conn.execute("SELECT pg_sleep(1.1)")
    assert await b.acquire() == 2
    assert await a.renew() is False


async def test_an_unreachable_database_is_unavailable_and_keeps_the_local_belief(store_dsn: str) -> None:
    clock = FakeMonotonic()
    lease = Lease(store_dsn, holder="a", url="u", duration=5.0, margin=1.0, timeout=2.0, monotonic=clock)
    try:
        await lease.acquire()
        lease._dsn = "host=127.0.0.1 port=1 user=postgres dbname=nothing"
        await lease._drop()
        with pytest.raises(StoreUnavailable):
            await lease.renew()
        assert lease.held()  # until its deadline: a blip does not end leadership
        clock.now += 4.0
        assert not lease.held()
    finally:
        await lease.close()


async def test_reachable_says_whether_the_last_lease_statement_reached_the_database(
    leases: Callable[..., Lease], store_dsn: str
) -> None:
    lease = leases("a")
    assert await lease.acquire() == 1
    assert lease.reachable
    name = psycopg.conninfo.conninfo_to_dict(store_dsn)["dbname"]
    admin = psycopg.conninfo.make_conninfo(store_dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        with pytest.raises(StoreUnavailable):
            await lease.renew()
        assert not lease.reachable
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert await lease.renew()
    assert lease.reachable


# --- A frozen old leader's writer holding the lease row ------------------------------------------------------


def frozen_writer(dsn: str, stopped: str) -> tuple[psycopg.Connection[Any], int]:
    """The old leader's writer as SIGSTOP leaves it: inside a fenced transaction (FOR SHARE on the lease row),
    stopped `mid-copy` (COPY FROM STDIN begun, some data sent), `mid-pipeline` (statements sent, no Sync) or
    `idle` (between statements). The client never continues; the connection stays open."""
    conn = psycopg.connect(dsn, autocommit=True)
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    pid = row[0]
    conn.execute("CREATE TEMP TABLE frozen_in (a text)")
    conn.execute("BEGIN")
    conn.execute("SELECT epoch FROM leader_lease WHERE id = 1 FOR SHARE")
    pg = conn.pgconn
    if stopped == "mid-copy":
        pg.send_query(b"COPY frozen_in (a) FROM STDIN")
        result = pg.get_result()
        assert result is not None and result.status == ExecStatus.COPY_IN
        pg.put_copy_data(b"a row\n")
        pg.flush()
    elif stopped == "mid-pipeline":
        pg.enter_pipeline_mode()
        pg.send_query_params(b"INSERT INTO frozen_in (a) VALUES ($1)", [b"a row"])
        pg.flush()
    return conn, pid


def session_state(dsn: str, pid: int) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return None if row is None else str(row[0])


@pytest.mark.parametrize("stopped", ["mid-copy", "mid-pipeline", "idle"])
async def test_a_takeover_ends_a_frozen_leaders_fenced_transaction(
    leases: Callable[..., Lease], store_dsn: str, stopped: str
) -> None:
    a, b = leases("a"), leases("b")
    assert await a.acquire() == 1
    expire_now(store_dsn)
    conn, pid = frozen_writer(store_dsn, stopped)
    try:
        assert session_state(store_dsn, pid) in ("active", "idle in transaction")
        # One acquire, bounded by its timeout: no waiting for the frozen client, which no server timeout ends
        # while it is mid-COPY or mid-pipeline.
        assert await b.acquire() == 2
        assert b.reachable
        assert session_state(store_dsn, pid) is None
        assert await a.renew() is False
    finally:
        conn.close()


async def test_a_live_lease_is_not_taken_from_a_writer_holding_its_row(
    leases: Callable[..., Lease], store_dsn: str
) -> None:
    a, b = leases("a"), leases("b")
    assert await a.acquire() == 1
    conn, pid = frozen_writer(store_dsn, "mid-copy")
    try:
        assert await b.acquire() is None  # the lease is not expired: its holder's writer is left alone
        assert session_state(store_dsn, pid) == "active"
        assert b.reachable
    finally:
        conn.close()
