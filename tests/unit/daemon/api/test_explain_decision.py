"""POST /api/v1/explain says what the daemon then does: the correlator's own open/attach/reopen decision,
with the correlation window and the reopen window applied. Each case asks, then sends the alert, and
compares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running

from .test_manage import iso

START = "2026-11-23T18:00:00Z"
WINDOW = 1800.0
REOPEN_WINDOW = 3600.0
CORRELATION = """
window: 30m
reopen_window: 1h
close_after: 1d
flapping: {enabled: false}
"""
Json = Any


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    write(etc / "rules" / "services.yaml", "services:\n  - name: api\n    tier: high\n")
    write(etc / "rules" / "correlation.yaml", CORRELATION)
    config = write(etc / "itsmd.yaml", "rules_dir: rules\n")
    async with running(config, tmp_path / "data", ManualClock(epoch(START))) as d:
        yield d


def labels(instance: str = "1") -> dict[str, str]:
    return {"alertname": "Down", "service": "api", "instance": instance}


async def fire(d: Daemon, instance: str = "1") -> None:
    now = d.clock.now()  # endsAt far ahead: the alert must not expire while the clock is moved
    status, body = await d.v2([{"labels": labels(instance), "startsAt": iso(now), "endsAt": iso(now + 86400)}])
    assert status == 200, body


async def end(d: Daemon, instance: str = "1") -> None:
    started = (await d.alert(fingerprint(labels(instance))))["starts_at"]
    status, body = await d.v2([{"labels": labels(instance), "startsAt": started, "endsAt": iso(d.clock.now())}])
    assert status == 200, body


async def explain_then_fire(d: Daemon, instance: str = "1") -> tuple[Json, Json]:
    """What explain says, and the incident the alert then went to: they must agree."""
    status, said = await d.post("/api/v1/explain", {"labels": labels(instance)})
    assert status == 200, said
    known = {i["id"]: i for i in await d.incidents("all")}
    await fire(d, instance)
    went_to = await d.incident((await d.alert(fingerprint(labels(instance))))["incident_id"])
    if said["incident"] is None:
        assert went_to["id"] not in known, f"explain said a new incident opens; the alert went to {went_to['id']}"
    else:
        joins = said["incident"]["id"]
        assert went_to["id"] == joins, f"explain said it joins {joins}; the daemon put it in {went_to['id']}"
        before = known[joins]
        assert said["incident"]["status"] == before["status"]
        reopened = said["decision"]["action"] == "reopen"
        assert went_to["reopen_count"] == before["reopen_count"] + reopened
    assert (said["decision"]["action"] == "open") is (said["incident"] is None), said
    assert went_to["status"] == "open"
    return said, went_to


async def test_resolved_longer_ago_than_the_reopen_window_opens_a_new_incident(daemon: Daemon) -> None:
    await fire(daemon)
    daemon.clock.advance(60)
    await end(daemon)
    daemon.clock.advance(REOPEN_WINDOW + 1)
    said, went_to = await explain_then_fire(daemon)
    assert said["decision"]["action"] == "open"
    assert said["decision"]["why"] == "incident 1 resolved 1h1s ago, beyond the reopen window of 1h (rule default)"
    assert went_to["id"] == 2
    assert (await daemon.incident(1))["status"] == "resolved"


async def test_resolved_within_the_reopen_window_reopens_it(daemon: Daemon) -> None:
    await fire(daemon)
    daemon.clock.advance(60)
    await end(daemon)
    daemon.clock.advance(REOPEN_WINDOW)
    said, went_to = await explain_then_fire(daemon)
    assert (said["decision"]["action"], said["incident"]) == ("reopen", {"id": 1, "status": "resolved"})
    assert (went_to["id"], went_to["reopen_count"]) == (1, 1)


async def test_active_incident_idle_longer_than_the_window_does_not_take_a_new_alert(daemon: Daemon) -> None:
    await fire(daemon, "1")
    daemon.clock.advance(WINDOW + 1)
    said, went_to = await explain_then_fire(daemon, "2")
    assert said["decision"]["action"] == "open"
    assert "took its last alert 30m1s ago, beyond the correlation window of 30m" in said["decision"]["why"]
    assert went_to["id"] == 2
    assert (await daemon.incident(1))["status"] == "open"


async def test_active_incident_within_the_window_takes_the_alert(daemon: Daemon) -> None:
    await fire(daemon, "1")
    daemon.clock.advance(WINDOW)
    said, went_to = await explain_then_fire(daemon, "2")
    assert (said["decision"]["action"], said["incident"]) == ("attach", {"id": 1, "status": "open"})
    assert went_to["id"] == 1


async def test_no_incident_of_the_key_opens_one(daemon: Daemon) -> None:
    said, went_to = await explain_then_fire(daemon)
    assert said["decision"] == {"action": "open", "why": "no incident of this key"}
    assert went_to["id"] == 1


async def test_explain_takes_the_labels_ingest_keeps(daemon: Daemon) -> None:
    status, said = await daemon.post("/api/v1/explain", {"labels": {**labels(), "team": ""}})
    assert status == 200, said
    assert said["labels"] == labels()
    status, plain = await daemon.post("/api/v1/explain", {"labels": labels()})
    assert (said["fingerprint"], said["key"]) == (plain["fingerprint"], plain["key"])
    status, body = await daemon.post("/api/v1/explain", {"labels": {"team": ""}})
    assert (status, body["reason"]) == (400, "invalid_body")
