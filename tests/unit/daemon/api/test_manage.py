"""The incident and problem API over HTTP on the real app: transitions, notes, 404/409/400 answers, problems
from recurring outages, the audit trail, explain, services and reloading the rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from daemon.storage.timestamps import rfc3339
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running, series

START = "2026-11-23T18:00:00Z"
SERVICES = """
services:
  - name: api
    tier: high
    team: web
  - name: db
"""
CORRELATION = """
reopen_window: 0s
close_after: 1h
flapping: {enabled: false}
recurrence: {count: 2, window: 1h}
"""


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    write(etc / "rules" / "services.yaml", SERVICES)
    write(etc / "rules" / "correlation.yaml", CORRELATION)
    config = write(etc / "itsmd.yaml", "rules_dir: rules\n")
    async with running(config, tmp_path / "data", ManualClock(epoch(START))) as d:
        yield d


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def fire(d: Daemon, *, alertname: str = "Down", severity: str = "critical", instance: str = "1") -> None:
    labels = {"alertname": alertname, "service": "api", "severity": severity, "instance": instance}
    now = d.clock.now()
    status, _ = await d.v2([{"labels": labels, "startsAt": iso(now), "endsAt": iso(now + 600)}])
    assert status == 200


async def end(d: Daemon, *, alertname: str = "Down", severity: str = "critical", instance: str = "1") -> None:
    labels = {"alertname": alertname, "service": "api", "severity": severity, "instance": instance}
    started = next(a for a in await d.alerts("firing") if a["labels"] == labels)["starts_at"]
    status, _ = await d.v2([{"labels": labels, "startsAt": started, "endsAt": iso(d.clock.now())}])
    assert status == 200


async def act(d: Daemon, incident: int | str, action: str, **body: Any) -> tuple[int, Any]:
    return await d.post(f"/api/v1/incidents/{incident}/{action}", {"by": "alice", **body})


async def test_acknowledge_answers_the_stored_incident(daemon: Daemon) -> None:
    await fire(daemon)
    daemon.clock.advance(120)
    status, body = await act(daemon, 1, "acknowledge", reason="on it")
    assert status == 200, body
    assert (body["status"], body["priority"], body["service"]) == ("acknowledged", "P1", "api")
    assert body["acknowledged_at"] == rfc3339(epoch(START) + 120)
    assert body["sla"]["respond_target_seconds"] == 900
    assert body["sla"]["resolve_by"] is not None
    assert body["timeline"][-1] == {
        "at": body["acknowledged_at"],
        "kind": "acknowledged",
        "detail": {"by": "anonymous", "on_behalf_of": "alice", "reason": "on it"},
    }


async def test_errors_are_json_with_the_allowed_transitions(daemon: Daemon) -> None:
    await fire(daemon)
    status, body = await act(daemon, 1, "close")
    assert (status, body["reason"]) == (409, "invalid_transition")
    assert "allowed: acknowledge, resolve" in body["error"]
    status, body = await act(daemon, 1, "resolve", reason="fixed")
    assert (status, body["reason"]) == (409, "alerts_firing")
    status, body = await act(daemon, 1, "resolve", reason="fixed", force=True)
    assert (status, body["status"], body["resolved_by"]) == (200, "resolved", "manual")
    status, body = await act(daemon, 99, "acknowledge")
    assert (status, body["reason"]) == (404, "not_found")
    status, body = await act(daemon, "x1", "acknowledge")
    assert status == 404
    status, body = await daemon.post("/api/v1/incidents/1/acknowledge", {"by": "", "reason": "who?"})
    assert (status, body["reason"]) == (400, "invalid_body")
    assert "by" in body["error"]
    status, body = await daemon.post("/api/v1/incidents/1/acknowledge", b"{not json")
    assert (status, body["reason"]) == (400, "invalid_json")
    status, body = await act(daemon, 1, "acknowledge", force=True)
    assert (status, body["error"]) == (400, "force applies to resolve only")


async def test_closed_is_final_and_answers_409(daemon: Daemon) -> None:
    await fire(daemon)
    daemon.clock.advance(10)
    await end(daemon)
    assert (await act(daemon, 1, "close", reason="done"))[0] == 200
    daemon.clock.advance(10)
    status, body = await act(daemon, 1, "reopen", reason="again")
    assert (status, body["reason"]) == (409, "invalid_transition")
    assert "allowed: none" in body["error"]
    status, body = await daemon.post("/api/v1/incidents/1/notes", {"by": "bob", "text": "late note"})
    assert (status, body["reason"]) == (409, "invalid_transition")


async def test_notes_go_on_the_timeline_and_into_the_audit_trail(daemon: Daemon) -> None:
    await fire(daemon)
    status, body = await daemon.post("/api/v1/incidents/1/notes", {"by": "bob", "text": "db failover at 18:01"})
    assert status == 200
    # The open API's caller is anonymous; the body's `by` is whom it says it acts for, not who acted.
    assert body["timeline"][-1]["detail"] == {"by": "anonymous", "on_behalf_of": "bob", "text": "db failover at 18:01"}
    events = (await daemon.get_json("/api/v1/audit?record_type=incident&record_id=1"))["events"]
    assert [e["action"] for e in events] == ["opened", "note"]
    assert (events[1]["actor"], events[1]["after"]["on_behalf_of"]) == ("anonymous", "bob")
    assert events[0]["after"]["priority"] == "P1"
    await daemon.get_json("/api/v1/audit?record_type=change", expect=400)


async def test_recurring_outages_open_a_problem_and_its_lifecycle(daemon: Daemon) -> None:
    for _ in range(2):
        await fire(daemon)
        daemon.clock.advance(10)
        await end(daemon)
        daemon.clock.advance(10)
    [problem] = (await daemon.get_json("/api/v1/problems"))["problems"]
    assert (problem["status"], problem["incidents"], problem["service"]) == ("candidate", [1, 2], "api")
    incident = await daemon.incident(2)
    assert incident["problem_id"] == problem["id"]
    status, body = await daemon.post(f"/api/v1/problems/{problem['id']}/known_error", {"by": "carol"})
    assert (status, body["reason"]) == (400, "invalid_body")
    status, body = await daemon.post(
        f"/api/v1/problems/{problem['id']}/known_error",
        {"by": "carol", "root_cause": "pool leak", "workaround": "restart the pool", "runbook": "restart-pool"},
    )
    assert (status, body["status"], body["runbook"]) == (200, "known_error", "restart-pool")
    audit = await daemon.get_json(f"/api/v1/audit?record_type=problem&record_id={problem['id']}")
    (known,) = [e for e in audit["events"] if e["action"] == "known_error"]
    assert (known["actor"], known["after"]["on_behalf_of"]) == ("anonymous", "carol")
    status, body = await daemon.post(f"/api/v1/problems/{problem['id']}/confirm", {"by": "carol"})
    assert status == 409
    assert "allowed: resolve" in body["error"]
    await fire(daemon)  # a new occurrence of the known error shows the workaround
    [latest] = await daemon.incidents("active")
    assert latest["workaround"] == "restart the pool"
    detail = await daemon.incident(latest["id"])
    assert detail["timeline"][-1]["kind"] in ("known_error", "alert_firing")
    assert any(t["kind"] == "known_error" for t in detail["timeline"])
    status, _ = await daemon.post("/api/v1/problems/99/resolve", {"by": "carol"})
    assert status == 404
    await daemon.get_json("/api/v1/problems/99", expect=404)
    assert (await daemon.get_json("/api/v1/problems?status=known_error"))["problems"][0]["id"] == problem["id"]
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_problems_opened_total", service="api")] == 1
    assert metrics[series("itsmd_problems_open", service="api", status="known_error")] == 1
    assert metrics[series("itsmd_incidents_repeat_total", service="api", priority="P1")] == 2


async def test_explain_says_why_and_stores_nothing(daemon: Daemon) -> None:
    status, body = await daemon.post(
        "/api/v1/explain", {"labels": {"alertname": "Down", "service": "api", "severity": "warning"}}
    )
    assert status == 200
    assert body["service"]["name"] == "api"
    assert body["service"]["why"] == "label service=api"
    assert body["rule"]["name"] == "default"
    assert body["key"] == '{alertname="Down",service="api"}'
    assert (body["priority"]["priority"], body["priority"]["impact"], body["priority"]["urgency"]) == (
        "P2",
        "high",
        "medium",
    )
    assert body["targets"] == {"respond_seconds": 1800.0, "resolve_seconds": 28800.0}
    assert body["incident"] is None
    assert await daemon.incidents() == []
    status, body = await daemon.post("/api/v1/explain", {"labels": {}})
    assert status == 400


async def test_services_lists_the_catalogue_with_effective_targets(daemon: Daemon) -> None:
    services = {s["name"]: s for s in (await daemon.get_json("/api/v1/services"))["services"]}
    assert list(services) == ["api", "db", "unknown"]
    assert services["api"]["targets"]["P1"] == {"respond": 900.0, "resolve": 14400.0}
    assert services["unknown"]["default"] is True


async def test_reload_keeps_the_last_good_rules_on_errors(daemon: Daemon, tmp_path: Path) -> None:
    rules = tmp_path / "etc" / "rules"
    write(rules / "services.yaml", SERVICES + "  - name: cache\n    tier: enormous\n")
    status, body = await daemon.post("/-/reload", b"")
    assert (status, body["reason"]) == (400, "invalid_rules")
    assert f"{rules / 'services.yaml'}:8: services[2].tier" in body["error"]
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_config_last_reload_successful")] == 0
    await fire(daemon)  # still the old catalogue: api is high tier
    assert (await daemon.incident(1))["priority"] == "P1"

    write(rules / "services.yaml", SERVICES.replace("tier: high", "tier: low") + "  - name: cache\n")
    status, body = await daemon.post("/-/reload", b"")
    assert (status, body) == (200, {"status": "success"})
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_config_last_reload_successful")] == 1
    assert metrics[series("itsmd_incidents_opened_total", service="cache", priority="P1")] == 0
    await fire(daemon, alertname="Other")
    [newer] = [i for i in await daemon.incidents() if i["id"] == 2]
    assert newer["priority"] == "P3"  # low tier x high urgency under the new rules
    assert (await daemon.incident(1))["priority"] == "P1"  # existing incidents keep theirs
