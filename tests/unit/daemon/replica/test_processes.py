"""Three replica processes on one PostgreSQL: a leader killed with SIGKILL is replaced; a leader frozen with
SIGSTOP past its lease and then continued does not act on what it was, and follows.

The processes run the role loop with the small leader app of apps.py (whose writes go through the fenced
PostgreSQL backend) and the real follower app.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from daemon.replica.proxy import SERVED_BY
from tests.e2e.procs import ManagedProcess
from tests.unit.daemon.ingest.conftest import eventually, parse_metrics
from tests.unit.daemon.replica.apps import free_port

REPO = Path(__file__).resolve().parents[4]
LEASE = 3.0
RENEW = 0.5


class Replica:
    def __init__(self, name: str, dsn: str, logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "tests.unit.daemon.replica.apps", "--dsn", dsn, "--name", name]
        argv += ["--port", str(self.port), "--lease", str(LEASE), "--renew", str(RENEW)]
        self.process = ManagedProcess(name, argv, logs / f"{name}.log", cwd=REPO)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process.pid is not None
        os.kill(self.process.pid, sig)

    async def leading(self, http: aiohttp.ClientSession) -> float | None:
        """itsmd_leader on its /metrics; None while nothing answers (between two roles, or frozen)."""
        try:
            async with http.get(f"{self.url}/metrics", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                return parse_metrics(await resp.text())[("itsmd_leader", frozenset())]
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def role(self, http: aiohttp.ClientSession) -> str | None:
        """Which app answers: the leader app itself, or the follower app (forwarding or refusing)."""
        try:
            async with http.get(f"{self.url}/role", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return "leader" if resp.status == 200 and SERVED_BY not in resp.headers else "follower"
        except (aiohttp.ClientError, TimeoutError):
            return None


@pytest.fixture
def replicas(store_dsn: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(name, store_dsn, tmp_path) for name in ("a", "b", "c")]
    try:
        for replica in started:
            replica.process.start()
        yield started
    finally:
        for replica in started:
            if replica.process.running():
                replica.signal(signal.SIGCONT)
                replica.process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def the_leader(http: aiohttp.ClientSession, replicas: list[Replica]) -> Replica:
    found: list[Replica] = []

    async def one() -> bool:
        found[:] = [r for r in replicas if r.process.running() and await r.leading(http) == 1]
        return len(found) == 1 and await found[0].role(http) == "leader"

    await eventually(one, within=20)
    return found[0]


def epoch(dsn: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT epoch, holder FROM leader_lease WHERE id = 1").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def writes(dsn: str, name: str) -> float | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT value FROM counters WHERE name = 'writes_total' AND labels = %s", (name,)).fetchone()
    return None if row is None else float(row[0])


async def test_a_killed_leader_is_replaced_within_ten_seconds(
    replicas: list[Replica], http: aiohttp.ClientSession, store_dsn: str
) -> None:
    old = await the_leader(http, replicas)
    before, _ = epoch(store_dsn)
    old.process.kill()
    killed_at = time.monotonic()
    rest = [r for r in replicas if r is not old]
    new = await the_leader(http, rest)
    # The bound the lease gives (3 s lease + a renew interval for a follower to try), with room for a busy host.
    assert time.monotonic() - killed_at < 10.0
    now, holder = epoch(store_dsn)
    assert (now, holder) == (before + 1, new.name)
    follower = next(r for r in rest if r is not new)
    async with http.post(f"{follower.url}/write") as resp:  # forwarded to the new leader
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["written_by"] == new.name


async def test_a_leader_frozen_past_its_lease_does_not_act_when_it_runs_again(
    replicas: list[Replica], http: aiohttp.ClientSession, store_dsn: str
) -> None:
    old = await the_leader(http, replicas)
    async with http.post(f"{old.url}/write") as resp:
        assert resp.status == 200
    written = writes(store_dsn, old.name)
    assert written is not None
    old.signal(signal.SIGSTOP)
    new = await the_leader(http, [r for r in replicas if r is not old])
    old.signal(signal.SIGCONT)
    # At once, before anything else: it does not count itself leader, and what it still answers cannot write.
    async with http.post(f"{old.url}/write") as resp:
        body = await resp.json()
    assert body.get("written_by") != old.name, body
    assert await old.leading(http) != 1  # 0, or nothing while its leader app is being stopped
    assert writes(store_dsn, old.name) == written
    await eventually(lambda: _role_is(old, http, "follower"))
    assert await old.leading(http) == 0
    assert epoch(store_dsn)[1] == new.name


async def _role_is(replica: Replica, http: aiohttp.ClientSession, role: str) -> bool:
    return await replica.role(http) == role
