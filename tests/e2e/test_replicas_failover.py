"""Three replicas on one PostgreSQL, with the real Prometheus and Alertmanager sending to all of them.

- an outage opens one incident, not one per replica;
- kill -9 the leader under sustained ingest, ITSMD_FAILOVER_CYCLES times (default 10): another replica leads
  within 10 s each time, every acknowledged alert is stored exactly once, one open incident per key;
- SIGSTOP the leader past its lease, then SIGCONT: another leads meanwhile, and the old one steps down
  without acting.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from .client import get_json, request, wait_until
from .replicas import LEASE, RENEW, SERVICE, ReplicaStack, leader_gauge, lease_row, query
from .stack import module_stack

CYCLES = int(os.environ.get("ITSMD_FAILOVER_CYCLES", "10"))
TAKEOVER_LIMIT = 10.0
WORKERS = 12
ALERTS_PER_REQUEST = 5
T0_ISO = "2026-11-30T18:00:00.000Z"

pytestmark = [pytest.mark.e2e, pytest.mark.replicas]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaStack]:
    yield from module_stack(ReplicaStack, tmp_path_factory.mktemp("replicas"))


def _open_incidents(stack: ReplicaStack, service: str) -> list[dict[str, object]]:
    return query(
        stack.dsn, "SELECT id, key, status FROM incidents WHERE service = %s AND status <> 'closed'", (service,)
    )


def test_an_outage_opens_one_incident_not_one_per_replica(replicas: ReplicaStack) -> None:
    replicas.set_target_down(True)
    try:
        wait_until(
            lambda: _open_incidents(replicas, SERVICE), timeout=60, what="an incident", describe=replicas.describe
        )

        # Every replica must have taken the alert in (Prometheus sends to all three, Alertmanager's webhook too)
        # before the count means anything.
        def every_replica_received() -> bool:
            return all(_received(url) > 0 for url in replicas.urls)

        wait_until(every_replica_received, timeout=60, what="alerts accepted by every replica")
        leader = replicas.wait_leader()
        # Settled: the leader has applied every inbox row.
        wait_until(lambda: _pending(replicas.urls[leader]) == 0, timeout=30, what="the inbox drained")
        incidents = _open_incidents(replicas, SERVICE)
        assert len(incidents) == 1, incidents
        # The same answer through every replica (followers proxy reads to the leader).
        ids = {
            tuple(
                i["id"] for i in get_json(f"{url}/api/v1/incidents?status=open")["incidents"] if i["service"] == SERVICE
            )
            for url in replicas.urls
        }
        assert ids == {(incidents[0]["id"],)}
    finally:
        replicas.set_target_down(False)


def _metric(url: str, name: str) -> float:
    text = get_json_text(f"{url}/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def get_json_text(url: str) -> str:
    resp = request("GET", url, timeout=5.0)
    assert resp.status == 200, resp.status
    return resp.text()


def _received(url: str) -> float:
    """Alerts this replica accepted: into its inbox as a follower, or directly as the leader."""
    return _metric(url, "itsmd_inbox_accepted_alerts_total") + _metric(url, "itsmd_alerts_received_total")


def _pending(url: str) -> float:
    return _metric(url, "itsmd_inbox_pending")


@dataclass
class Tally:
    acked: set[str] = field(default_factory=set)
    sent: int = 0
    acked_requests: int = 0
    refused: int = 0
    errors: int = 0
    refused_since: float | None = None
    longest_gap: float = 0.0


async def _load(urls: list[str], stop: asyncio.Event, tally: Tally) -> None:
    counter = itertools.count()
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(w: int) -> None:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                n = next(counter)
                url = urls[n % len(urls)]
                instances = [f"w{w}-{n}-{k}" for k in range(ALERTS_PER_REQUEST)]
                body = [
                    {"labels": {"alertname": "Failover", "service": "failover", "instance": i}, "startsAt": T0_ISO}
                    for i in instances
                ]
                tally.sent += 1
                try:
                    async with session.post(f"{url}/api/v2/alerts", json=body) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, OSError, TimeoutError):
                    ok = False
                    tally.errors += 1
                if ok:
                    tally.acked_requests += 1
                    tally.acked.update(instances)
                else:
                    tally.refused += 1
                    await asyncio.sleep(0.05)  # a sender's retry delay, not a wait for an event

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))


def test_kill9_the_leader_under_ingest(replicas: ReplicaStack) -> None:
    takeovers: list[float] = []

    async def scenario() -> Tally:
        tally = Tally()
        stop = asyncio.Event()
        load = asyncio.create_task(_load(replicas.urls, stop, tally))
        try:
            for _ in range(CYCLES):
                leader = await asyncio.to_thread(replicas.wait_leader)
                before = tally.acked_requests
                await asyncio.to_thread(
                    wait_until, lambda b=before: tally.acked_requests > b + 20, timeout=30, what="load flowing"
                )
                killed_at = time.monotonic()
                replicas.replicas[leader].kill()
                await asyncio.to_thread(replicas.wait_leader, other_than=leader, timeout=TAKEOVER_LIMIT + 20)
                takeovers.append(time.monotonic() - killed_at)
                await asyncio.to_thread(replicas.start_replica, leader)
        finally:
            stop.set()
            await load
        return tally

    tally = asyncio.run(scenario())
    leader = replicas.wait_leader()
    wait_until(lambda: _pending(replicas.urls[leader]) == 0, timeout=60, what="the inbox drained")
    stored = query(
        replicas.dsn,
        "SELECT labels::jsonb->>'instance' AS instance, count(*) AS n FROM alerts "
        "WHERE labels::jsonb->>'alertname' = 'Failover' GROUP BY 1",
    )
    by_instance = {r["instance"]: r["n"] for r in stored}
    missing = sorted(tally.acked - set(by_instance))
    print(
        f"\nfailovers: {CYCLES}; time to new leader (s): "
        + ", ".join(f"{t:.1f}" for t in takeovers)
        + f"; requests sent {tally.sent}, acknowledged {tally.acked_requests}, refused {tally.refused} "
        f"(connection errors {tally.errors}); alerts acknowledged {len(tally.acked)}, stored {len(by_instance)}, "
        f"missing {len(missing)}"
    )
    assert tally.acked_requests > CYCLES * 20
    assert not missing, f"{len(missing)} acknowledged alerts lost, e.g. {missing[:5]}"
    assert all(n == 1 for n in by_instance.values())
    assert max(takeovers) <= TAKEOVER_LIMIT, takeovers
    duplicated = query(
        replicas.dsn,
        "SELECT key, count(*) AS n FROM incidents WHERE status <> 'closed' GROUP BY key HAVING count(*) > 1",
    )
    assert duplicated == []


def test_a_frozen_leader_steps_down_without_acting(replicas: ReplicaStack) -> None:
    leader = replicas.wait_leader()
    epoch = lease_row(replicas.dsn)["epoch"]
    replicas.freeze(leader)
    try:
        successor = replicas.wait_leader(other_than=leader, timeout=LEASE + TAKEOVER_LIMIT)
    finally:
        replicas.thaw(leader)
    row = lease_row(replicas.dsn)
    assert row["epoch"] > epoch
    assert row["holder"] == f"r{successor}"
    # On waking it sees its lease ran out before it does anything else; it never says leader again.
    wait_until(
        lambda: leader_gauge(replicas.urls[leader]) == 0.0,
        timeout=RENEW * 5 + 10,
        what="the thawed replica to step down",
        describe=replicas.describe,
    )
    assert replicas.leaders() == [successor]
    assert lease_row(replicas.dsn)["epoch"] == row["epoch"]
    log = Path(replicas.replicas[leader].log_path).read_text(errors="replace")
    assert "fenced" in log.lower() or "lost the lease" in log.lower() or "stepping down" in log.lower(), log[-3000:]
