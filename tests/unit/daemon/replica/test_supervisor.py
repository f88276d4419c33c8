"""The role loop with real aiohttp apps on real ports and the lease on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import psycopg
import pytest
from aiohttp import web

from daemon.replica.lease import Lease
from daemon.replica.proxy import SERVED_BY
from daemon.replica.state import ReplicaState
from daemon.replica.supervisor import Supervisor
from tests.unit.daemon.ingest.conftest import eventually, parse_metrics, series
from tests.unit.daemon.replica.apps import follower_app, free_port, leader_app


@dataclass
class Replica:
    supervisor: Supervisor
    lease: Lease
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.supervisor.port}"

    async def leader_metric(self, http: aiohttp.ClientSession) -> float | None:
        """itsmd_leader as served now; None in the moment between one role's app and the other's."""
        try:
            async with http.get(f"{self.url}/metrics") as resp:
                return parse_metrics(await resp.text())[series("itsmd_leader")]
        except aiohttp.ClientConnectionError:
            return None

    async def serves(self, http: aiohttp.ClientSession, role: str) -> bool:
        """The app of this role answers: the leader app has /role; the follower app forwards it to the leader
        (saying so in X-Itsmd-Served-By) or refuses it when no leader can be reached."""
        try:
            async with http.get(f"{self.url}/role") as resp:
                served = "leader" if resp.status == 200 and SERVED_BY not in resp.headers else "follower"
        except aiohttp.ClientConnectionError:
            return False
        return served == role


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def replicas(store_dsn: str) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    started: list[Replica] = []

    async def start(name: str, *, lease: float = 3.0, renew: float = 0.2, margin: float = 0.5) -> Replica:
        port = free_port()
        state = ReplicaState(name=name, url=f"http://127.0.0.1:{port}")
        ls = Lease(store_dsn, holder=name, url=state.url, duration=lease, margin=margin, timeout=1.0)
        sup = Supervisor(
            ls,
            state,
            leader_app=leader_app(store_dsn),
            follower_app=follower_app(store_dsn, renew),
            host="127.0.0.1",
            port=port,
            renew=renew,
            shutdown_timeout=5.0,
        )
        replica = Replica(sup, ls)
        replica.task = asyncio.create_task(sup.run(replica.stop))
        await asyncio.wait_for(sup.listening(), 10)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop.set()
    for replica in started:
        assert replica.task is not None
        await asyncio.wait_for(replica.task, 15)


async def leaders(http: aiohttp.ClientSession, *of: Replica) -> list[str]:
    out = []
    for replica in of:
        if replica.task is not None and not replica.task.done() and await replica.leader_metric(http) == 1:
            out.append(replica.supervisor.state.name)
    return out


def take_over(dsn: str, holder: str) -> int:
    """Another replica takes the lease at once, as after the holder's lease ran out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE leader_lease SET epoch = epoch + 1, holder = %s, url = 'http://elsewhere', "
            "expires_at = clock_timestamp() + interval '1 hour' WHERE id = 1 RETURNING epoch",
            (holder,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_one_of_two_leads_and_serves_the_leader_app(
    replicas: Callable[..., Awaitable[Replica]], http: aiohttp.ClientSession
) -> None:
    a = await replicas("a")
    b = await replicas("b")
    await eventually(lambda: _one_leader(http, a, b))
    await eventually(lambda: _is_leader(http, a) if a.supervisor.state.role == "leader" else _is_leader(http, b))
    leader, follower = (a, b) if (await leaders(http, a, b)) == ["a"] else (b, a)
    async with http.post(f"{leader.url}/write") as resp:
        assert resp.status == 200, await resp.text()
    async with http.post(f"{follower.url}/write") as resp:
        assert resp.status == 200, await resp.text()  # forwarded to the leader
        assert resp.headers[SERVED_BY] == follower.supervisor.state.name
        assert (await resp.json())["written_by"] == leader.supervisor.state.name
    async with http.get(f"{follower.url}/metrics") as resp:
        info = parse_metrics(await resp.text())
    name = follower.supervisor.state.name
    assert info[series("itsmd_replica_info", replica=name, role="follower", epoch="1")] == 1


async def _one_leader(http: aiohttp.ClientSession, *of: Replica) -> bool:
    return len(await leaders(http, *of)) == 1


async def test_a_stopped_leader_releases_and_the_other_takes_over_before_expiry(
    replicas: Callable[..., Awaitable[Replica]], http: aiohttp.ClientSession
) -> None:
    # A lease of a minute: a takeover within the test's 10 s can only come from the release.
    a = await replicas("a", lease=60.0, renew=1.0)
    await eventually(lambda: _is_leader(http, a))
    b = await replicas("b", lease=60.0, renew=0.2)
    a.stop.set()
    assert a.task is not None
    await asyncio.wait_for(a.task, 10)
    await eventually(lambda: _is_leader(http, b))
    assert b.supervisor.state.epoch == 2


async def _is_leader(http: aiohttp.ClientSession, replica: Replica) -> bool:
    return await replica.leader_metric(http) == 1 and await replica.serves(http, "leader")


async def _is_follower_app(http: aiohttp.ClientSession, replica: Replica) -> bool:
    return await replica.serves(http, "follower")


async def test_a_leader_whose_lease_was_taken_steps_down_to_follower(
    replicas: Callable[..., Awaitable[Replica]], http: aiohttp.ClientSession, store_dsn: str
) -> None:
    a = await replicas("a")
    await eventually(lambda: _is_leader(http, a))
    async with http.get(f"{a.url}/role") as resp:
        assert resp.status == 200
    take_over(store_dsn, "elsewhere")
    await eventually(lambda: _is_follower_app(http, a))
    assert await a.leader_metric(http) == 0
    assert a.supervisor.state.role == "follower"
    assert a.supervisor.state.leader_url == "http://elsewhere"
    await eventually(lambda: _sees(a, "http://elsewhere"))


async def _sees(replica: Replica, url: str) -> bool:
    return replica.supervisor.state.leader_url == url


async def test_a_fenced_write_makes_the_leader_step_down_before_its_renew(
    replicas: Callable[..., Awaitable[Replica]], http: aiohttp.ClientSession, store_dsn: str
) -> None:
    # Renewing only every 20 s: what ends this leadership is the store refusing the write.
    a = await replicas("a", lease=60.0, renew=20.0)
    await eventually(lambda: _is_leader(http, a))
    take_over(store_dsn, "elsewhere")
    async with http.post(f"{a.url}/write") as resp:
        assert resp.status == 503
        assert "not the leader" in (await resp.json())["error"]
    await eventually(lambda: _is_follower_app(http, a))
    assert a.supervisor.state.role == "follower"


async def test_a_frozen_leader_steps_down_at_its_local_deadline(
    replicas: Callable[..., Awaitable[Replica]], http: aiohttp.ClientSession, store_dsn: str
) -> None:
    a = await replicas("a", lease=3.0, renew=0.2)
    await eventually(lambda: _is_leader(http, a))
    with psycopg.connect(store_dsn) as conn:
        # The renews hang on this row lock, as they would for a leader that cannot reach its database...
        conn.execute("SELECT 1 FROM leader_lease WHERE id = 1 FOR UPDATE")
        # ...so the local deadline (lease - margin after the last renew) passes and it steps down.
        await eventually(lambda: _is_follower_app(http, a))
        assert await a.leader_metric(http) == 0
    assert a.lease.epoch is None


async def test_losing_the_lease_while_the_leader_app_starts_keeps_the_follower(
    store_dsn: str, http: aiohttp.ClientSession
) -> None:
    started, go_on, cleaned = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def slow_leader(state: ReplicaState) -> web.Application:
        app = web.Application()

        async def loading(app: web.Application) -> AsyncIterator[None]:
            started.set()
            await go_on.wait()
            yield
            cleaned.set()

        app.cleanup_ctx.append(loading)
        return app

    state = ReplicaState(name="a", url="http://a")
    lease = Lease(store_dsn, holder="a", url="http://a", duration=3.0, margin=0.5, timeout=1.0)
    sup = Supervisor(
        lease,
        state,
        leader_app=slow_leader,
        follower_app=follower_app(store_dsn, 0.2),
        host="127.0.0.1",
        port=0,
        renew=0.2,
        shutdown_timeout=5.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    try:
        await asyncio.wait_for(started.wait(), 10)
        take_over(store_dsn, "elsewhere")
        await eventually(_not_leading(lease))
        go_on.set()
        await asyncio.wait_for(cleaned.wait(), 10)  # set up, then taken down without serving
        async with http.get(f"http://127.0.0.1:{sup.port}/anything") as resp:
            assert resp.status == 503  # the follower app (the leader it forwards to is unreachable), never a 404
            assert (await resp.json())["reason"] == "no_leader"
        assert state.role == "follower"
    finally:
        go_on.set()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


def _not_leading(lease: Lease) -> Callable[[], Awaitable[bool]]:
    return lambda: _async(lease.epoch is None)


async def _async(value: bool) -> bool:
    return value
