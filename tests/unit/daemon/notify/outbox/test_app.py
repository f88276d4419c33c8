"""Webhooks through the real app: alerts in over HTTP, signed events out to a real local receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from daemon.notify.outbox import signing
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running, series, write_config
from tests.unit.daemon.notify.outbox.harness import SECRET, SECRET_ENV, documented_verify
from tests.unit.daemon.notify.outbox.receiver_server import Receiver


@pytest.fixture
async def daemon(tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Daemon]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = write_config(
        tmp_path / "etc",
        f"notify:\n  webhooks:\n    - name: hook\n      url: {hook.url}\n      secret: {{env: {SECRET_ENV}}}\n"
        "      events: [incident_opened, incident_acknowledged, incident_resolved]\n"
        "      retry_initial: 1s\n      max_age: 10s\n",
    )
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


def iso(clock: ManualClock, offset: float = 0.0) -> str:
    return datetime.fromtimestamp(clock.now() + offset, UTC).isoformat()


async def test_incident_events_arrive_signed_and_in_order(daemon: Daemon, hook: Receiver) -> None:
    labels = {"alertname": "TargetDown", "service": "api", "instance": "a"}
    starts = iso(daemon.clock)
    status, _ = await daemon.v2([{"labels": labels, "startsAt": starts, "endsAt": iso(daemon.clock, 300)}])
    assert status == 200
    await eventually(lambda: _got(hook, 1))
    [incident] = await daemon.incidents()
    status, _ = await daemon.post(f"/api/v1/incidents/{incident['id']}/acknowledge", {"reason": "on it"})
    assert status == 200
    daemon.clock.advance(10)
    status, _ = await daemon.v2([{"labels": labels, "startsAt": starts, "endsAt": iso(daemon.clock)}])
    await eventually(lambda: _got(hook, 3))
    bodies = [json.loads(g.body) for g in hook.got]
    assert [b["kind"] for b in bodies] == ["incident_opened", "incident_acknowledged", "incident_resolved"]
    assert {b["incident_id"] for b in bodies} == {incident["id"]}
    assert bodies[0]["labels"] == labels and bodies[0]["incident"]["title"]
    verify = documented_verify()
    for got in hook.got:
        # The daemon's clock is a manual one, far from the wall clock the snippet checks recency against.
        assert verify(SECRET.encode(), got.body, got.headers[signing.SIGNATURE_HEADER], tolerance=1e10)
    metrics = await daemon.metrics()
    delivered = series("itsmd_notifications_total", channel="webhook", kind="incident_opened", outcome="delivered")
    assert metrics[delivered] == 1
    await eventually(lambda: _pending(daemon, 0))


async def test_an_event_that_cannot_be_delivered_is_dead_lettered_and_listed(daemon: Daemon, hook: Receiver) -> None:
    hook.status = 500
    labels = {"alertname": "TargetDown", "service": "api", "instance": "b"}
    await daemon.v2([{"labels": labels, "startsAt": iso(daemon.clock), "endsAt": iso(daemon.clock, 300)}])
    await eventually(lambda: _got(hook, 1))
    body = await daemon.get_json("/api/v1/webhooks")
    assert body["receivers"][0]["name"] == "hook" and body["receivers"][0]["pending"] == 1
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_outbox_pending", receiver="hook")] == 1
    daemon.clock.advance(10)
    await eventually(lambda: _dead(daemon))
    [letter] = (await daemon.get_json("/api/v1/webhooks/dead-letters"))["dead_letters"]
    assert letter["receiver"] == "hook" and letter["kind"] == "incident_opened"
    assert letter["last_error"] == "HTTP 500" and letter["attempts"] >= 2
    assert letter["body"]["labels"] == labels
    metrics = await daemon.metrics()
    dead = series("itsmd_notifications_total", channel="webhook", kind="incident_opened", outcome="dead")
    assert metrics[dead] == 1
    assert metrics[series("itsmd_outbox_pending", receiver="hook")] == 0
    await daemon.get_json("/api/v1/webhooks/dead-letters?receiver=nope", expect=400)
    async with daemon.client.get("/webhooks") as resp:
        page = await resp.text()
    assert resp.status == 200
    assert f"<code>{letter['event_id']}</code>" in page and "HTTP 500" in page
    assert f'href="/incidents/{letter["incident_id"]}"' in page


async def _got(hook: Receiver, n: int) -> bool:
    return len(hook.got) >= n


async def _pending(daemon: Daemon, n: int) -> bool:
    return bool((await daemon.get_json("/api/v1/webhooks"))["receivers"][0]["pending"] == n)


async def _dead(daemon: Daemon) -> bool:
    return bool((await daemon.get_json("/api/v1/webhooks/dead-letters"))["dead_letters"])
