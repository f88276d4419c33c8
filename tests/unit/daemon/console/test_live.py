"""Live pages: a committed change is announced on /events, coalesced, and a slow page is told to resync."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse

from daemon.clock import ManualClock
from daemon.console import live
from daemon.console.live import LiveHub
from daemon.storage.database import Batch, Statement
from tests.unit.daemon.ingest.conftest import Daemon, running, write_config

INCIDENT = Statement("incident")
OTHER = Statement("other")


async def next_event(resp: ClientResponse, within: float = 5.0) -> dict[str, object]:
    """The data of the next `changed` event on an SSE stream (comments and retry lines skipped)."""
    event = ""
    async with asyncio.timeout(within):
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "changed":
                data: dict[str, object] = json.loads(line[len("data: ") :])
                return data


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running(write_config(tmp_path / "etc"), tmp_path / "data", ManualClock()) as d:
        yield d


async def test_an_incident_opened_by_an_alert_is_announced(daemon: Daemon) -> None:
    async with daemon.client.get("/events") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert (await resp.content.readline()).startswith(b"retry: ")
        status, _ = await daemon.v2([{"labels": {"alertname": "Down", "service": "api"}}])
        assert status == 200
        assert (await next_event(resp))["incidents"] == [1]


async def test_announcements_are_coalesced_and_name_only_ids() -> None:
    hub = LiveHub({INCIDENT: "incidents"})
    queue: asyncio.Queue[str] = asyncio.Queue(live.QUEUE)
    hub._subscribers.add(queue)
    for n in (3, 1, 3):
        batch = Batch()
        batch.upsert(INCIDENT, n, ("secret title",))
        batch.upsert(OTHER, n, ("x",))
        hub.on_commit(batch)
    message = await asyncio.wait_for(queue.get(), 2)
    assert json.loads(message) == {"incidents": [1, 3]}
    assert queue.empty()


async def test_a_page_that_falls_behind_gets_one_resync() -> None:
    hub = LiveHub({INCIDENT: "incidents"})
    queue: asyncio.Queue[str] = asyncio.Queue(2)
    hub._subscribers.add(queue)
    for n in range(4):
        hub._pending = {"incidents": {n}}
        hub._announce()
    messages = [queue.get_nowait() for _ in range(queue.qsize())]
    assert '{"resync":true}' in messages
    assert len(messages) <= 2


async def test_events_need_a_session_when_tokens_are_set(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("token-abcdefghijklmnop")
    config = write_config(tmp_path / "etc", f"auth:\n  api:\n    read_tokens: [{{token_file: {tmp_path / 't'}}}]\n")
    async with running(config, tmp_path / "data", ManualClock()) as d, d.client.get("/events") as resp:
        assert resp.status == 401
