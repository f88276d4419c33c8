"""The real app on a real SQLite file in tmp_path, driven over HTTP, with a clock the tests move by hand.

Captured payloads come from tests/testdata (each `{"_capture","headers","body"}`; body is exactly what was
POSTed). The clock starts just before the first capture (2026-11-23T18:15:50Z), so the captured times are
"now" to the daemon and Prometheus' endsAt (send time + 4 min) is in the future.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from daemon.app import create_app
from daemon.clock import ManualClock
from tests.unit.daemon.configfiles import load_test_config, write_rules

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
WEBHOOK_CAPTURES = sorted((TESTDATA / "alertmanager").glob("am_webhook_*.json"))
PROMETHEUS_CAPTURES = sorted((TESTDATA / "prometheus").glob("prometheus_post_*.json"))
PROM_FIRING_UA = "Prometheus/2.42.0+ds"
"""The User-Agent of the captured Prometheus posts: replays send it, so they are counted as Prometheus'."""
MAX_BODY_BYTES = 16384
"""Small enough that a test can go over it; every capture is well below it."""

Json = Any
Series = tuple[str, frozenset[tuple[str, str]]]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def capture(name: str) -> Json:
    """The body of one captured request; name is a file under tests/testdata, with or without its folder."""
    return _capture_file(name)["body"]


def received_at(name: str) -> str:
    """When the capturing receiver got the request (RFC 3339)."""
    recv_ts: str = _capture_file(name)["_capture"]["recv_ts"]
    return recv_ts


def _capture_file(name: str) -> Json:
    path = TESTDATA / name
    if not path.exists():
        path = next(TESTDATA.glob(f"*/{name}"))
    return json.loads(path.read_text(encoding="utf-8"))


def parse_metrics(text: str) -> dict[Series, float]:
    """Every sample of a /metrics answer, by name and label set."""
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def series(name: str, **labels: str) -> Series:
    return (name, frozenset(labels.items()))


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll until check() is true; fail after `within` seconds. For what is written lazily (last-seen times)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not true within {within}s"
        await asyncio.sleep(0.02)


def write_config(folder: Path, text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "itsmd.yaml"
    text = text or f"ingest:\n  max_body_bytes: {MAX_BODY_BYTES}\n"
    if "rules_dir" not in text:
        text = f"rules_dir: rules\n{text}"
        write_rules(folder / "rules")
    path.write_text(text, encoding="utf-8")
    return path


class Daemon:
    """A running app and a client for it."""

    def __init__(self, client: TestClient[Any, Any], clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    def at(self, when: str) -> None:
        """Move the clock forward to an RFC 3339 time."""
        target = epoch(when)
        assert target >= self.clock.now(), "the clock only moves forward"
        self.clock.advance(target - self.clock.now())

    async def post_capture(self, name: str) -> tuple[int, Json]:
        """Replay a captured request at the time it was received."""
        self.at(received_at(name))
        if name.startswith("prometheus"):
            return await self.v2(capture(name))
        return await self.post("/webhook/alertmanager", capture(name))

    async def post(self, path: str, body: Json | bytes, **kwargs: Any) -> tuple[int, Json]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        async with self.client.post(path, data=data, headers=headers, **kwargs) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()

    async def webhook(self, body: Json | bytes) -> tuple[int, Json]:
        return await self.post("/webhook/alertmanager", body)

    async def v2(self, body: Json | bytes) -> tuple[int, Json]:
        return await self.post("/api/v2/alerts", body, headers={"User-Agent": PROM_FIRING_UA})

    async def get_json(self, path: str, expect: int = 200) -> Json:
        async with self.client.get(path) as resp:
            assert resp.status == expect, await resp.text()
            return await resp.json()

    async def alerts(self, status: str = "all") -> list[Json]:
        body = await self.get_json(f"/api/v1/alerts?status={status}&limit=1000")
        alerts: list[Json] = body["alerts"]
        return alerts

    async def alert(self, fingerprint: str) -> Json:
        return await self.get_json(f"/api/v1/alerts/{fingerprint}")

    async def incidents(self, status: str = "all") -> list[Json]:
        body = await self.get_json(f"/api/v1/incidents?status={status}&limit=1000")
        incidents: list[Json] = body["incidents"]
        return incidents

    async def incident(self, incident_id: int) -> Json:
        return await self.get_json(f"/api/v1/incidents/{incident_id}")

    async def metrics(self) -> dict[Series, float]:
        async with self.client.get("/metrics") as resp:
            assert resp.status == 200
            return parse_metrics(await resp.text())

    async def rejected(self) -> dict[str, float]:
        return {
            dict(labels)["reason"]: value
            for (name, labels), value in (await self.metrics()).items()
            if name == "itsmd_alerts_rejected_total"
        }


@asynccontextmanager
async def running(
    config: Path, data_dir: Path, clock: ManualClock, *, inbox_dsn: str | None = None
) -> AsyncIterator[Daemon]:
    """The app from `config` on `data_dir`, up (ready) until the block ends, then stopped cleanly; with
    `inbox_dsn`, a leader that applies the followers' inbox in that database."""
    app = create_app(load_test_config(config, data_dir=data_dir), clock=clock, inbox_dsn=inbox_dsn)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    try:
        # Inside the try: an app that fails to start must not leave its client session to the next test.
        await client.start_server()
        async with client.get("/-/ready") as resp:
            assert resp.status == 200, await resp.text()
        yield Daemon(client, clock)
    finally:
        await client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=epoch("2026-11-23T18:15:50Z"))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "etc")


@pytest.fixture
async def daemon(config_path: Path, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Daemon]:
    async with running(config_path, tmp_path / "data", clock) as d:
        yield d
