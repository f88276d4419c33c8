"""The lease on a real PostgreSQL: one holder at a time, takeover only after expiry, a higher epoch each time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

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
