"""The running daemon publishes its incidents to a configured Alertmanager (a real local server), and
re-publishes them after a restart with the same fingerprints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.ingest.conftest import epoch, eventually, running, series, write_config
from tests.unit.integrations.upstream import Upstream, serving

PATH = "/api/v2/alerts"
NOW = "2026-11-23T18:15:50Z"


@pytest.fixture
async def am() -> AsyncIterator[Upstream]:
    async with serving() as server:
        server.answer("POST", PATH, 200, text="")
        yield server


def config(tmp_path: Path, am: Upstream) -> Path:
    return write_config(
        tmp_path / "etc",
        "notify:\n"
        "  external_url: https://itsmd.example.org/\n"
        "  alertmanagers:\n"
        f"    - url: {am.url()}\n"
        "  publish:\n"
        "    interval: 20ms\n",
    )


def webhook(labels: dict[str, str], status: str = "firing") -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "checkout is failing"},
        "startsAt": NOW,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-23T18:16:00Z",
        "fingerprint": fingerprint(labels),
    }
    return {"version": "4", "status": status, "receiver": "itsmd", "alerts": [alert], "groupKey": "{}:{}"}


def published(am: Upstream, alertname: str = "ItsmdIncidentOpen") -> list[dict[str, Any]]:
    out = []
    for request in am.requests:
        if request.method == "POST" and request.path == PATH:
            out += [a for a in request.json() if a["labels"]["alertname"] == alertname]
    return out


async def test_an_incident_is_published_and_resolved_and_again_after_a_restart(tmp_path: Path, am: Upstream) -> None:
    clock = ManualClock(epoch(NOW))
    path = config(tmp_path, am)
    labels = {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"}
    async with running(path, tmp_path / "data", clock) as d:
        status, _ = await d.webhook(webhook(labels))
        assert status == 200

        async def sent() -> bool:
            return bool(published(am))

        await eventually(sent)
        first = published(am)[0]
        assert first["labels"]["incident"] == "1"
        assert first["labels"]["service"] == "checkout"
        assert first["labels"]["itsmd_publisher"] == "itsmd"
        assert first["annotations"]["console_url"] == "https://itsmd.example.org/incidents/1"
        metrics = await d.metrics()
        assert metrics[series("itsmd_notify_published_states", kind="ItsmdIncidentOpen")] == 1

    am.requests.clear()
    async with running(path, tmp_path / "data", clock) as d:

        async def again() -> bool:
            return bool(published(am))

        await eventually(again)
        assert fingerprint(published(am)[0]["labels"]) == fingerprint(first["labels"])

        clock.advance(10)
        status, _ = await d.webhook(webhook(labels, "resolved"))
        assert status == 200
        assert (await d.incident(1))["status"] == "resolved"

        async def resolved() -> bool:
            return any(epoch(a["endsAt"]) <= clock.now() for a in published(am))

        await eventually(resolved)
        resolve = next(a for a in published(am) if epoch(a["endsAt"]) <= clock.now())
        assert resolve["labels"] == first["labels"]
