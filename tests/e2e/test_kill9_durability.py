"""Nothing acknowledged is lost, kill -9 included.

Concurrent clients post batches of new alerts; at a random moment the daemon is SIGKILLed; after a restart
every alert whose request got a 200 must be in the store with the labels and startsAt it was sent with.
Several cycles run on one data dir, so each restart also recovers the previous ones' state.
ITSMD_KILL_CYCLES sets how many (default 3).
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.client import get_json
from tests.e2e.procs import ManagedProcess
from tests.e2e.stack import free_ports, itsmd_process, wait_serving

CYCLES = int(os.environ.get("ITSMD_KILL_CYCLES", "3"))
WORKERS = 16
ALERTS_PER_REQUEST = 5
T0_ISO = "2026-11-23T18:00:00.000Z"


@dataclass
class Tally:
    acked: dict[str, dict[str, str]] = field(default_factory=dict)
    """Labels of every alert whose request got 200, by the instance label that makes it unique."""
    sent_requests: int = 0
    acked_requests: int = 0
    failed_requests: int = 0


async def _worker(session: aiohttp.ClientSession, url: str, cycle: int, worker: int, tally: Tally) -> None:
    n = 0
    while True:
        sent: list[dict[str, str]] = []
        batch: list[dict[str, object]] = []
        for _ in range(ALERTS_PER_REQUEST):
            n += 1
            labels = {"alertname": "Durability", "service": "kill9", "instance": f"c{cycle}-w{worker}-{n}"}
            sent.append(labels)
            batch.append({"labels": labels, "annotations": {"n": str(n)}, "startsAt": T0_ISO})
        tally.sent_requests += 1
        try:
            async with session.post(url, json=batch) as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, OSError):
            tally.failed_requests += 1
            return  # the daemon is gone
        if ok:
            tally.acked_requests += 1
            for labels in sent:
                tally.acked[labels["instance"]] = labels
        else:
            tally.failed_requests += 1


async def _load_then_kill(url: str, daemon: ManagedProcess, cycle: int, tally: Tally) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [asyncio.create_task(_worker(session, url, cycle, w, tally)) for w in range(WORKERS)]
        # Not waiting for an event: the point is a random moment under load, as a crash would pick.
        await asyncio.sleep(random.uniform(0.3, 1.5))  # noqa: S311 (not for security)
        daemon.kill()
        await asyncio.wait_for(asyncio.gather(*workers), 15)


def _stored(base: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    offset = 0
    while True:
        page = get_json(f"{base}/api/v1/alerts?status=all&limit=1000&offset={offset}")["alerts"]
        for alert in page:
            out[alert["labels"]["instance"]] = alert
        if len(page) < 1000:
            return out
        offset += 1000


@pytest.mark.e2e
def test_every_acknowledged_alert_survives_sigkill(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "itsmd.yaml"
    config.write_text("{}\n")
    daemon = itsmd_process(config, port, tmp_path / "data", tmp_path / "itsmd.log")

    def start() -> None:
        daemon.start()
        wait_serving(daemon, base)

    tally = Tally()
    try:
        for cycle in range(CYCLES):
            start()
            asyncio.run(_load_then_kill(f"{base}/api/v2/alerts", daemon, cycle, tally))
        start()
        stored = _stored(base)
    finally:
        daemon.stop()
    missing = sorted(set(tally.acked) - set(stored))
    print(
        f"\nkill -9 cycles: {CYCLES}; requests sent {tally.sent_requests}, acknowledged {tally.acked_requests}, "
        f"failed {tally.failed_requests}; alerts acknowledged {len(tally.acked)}, stored {len(stored)}, "
        f"missing {len(missing)}"
    )
    assert tally.acked_requests > CYCLES, "the load never got going; the test proved nothing"
    assert not missing, f"{len(missing)} acknowledged alerts lost, e.g. {missing[:5]}"
    for instance, labels in tally.acked.items():
        assert stored[instance]["labels"] == labels
        assert stored[instance]["starts_at"] == T0_ISO
        assert stored[instance]["status"] == "firing"
