"""Incident events start runbooks, through the real app: alerts in over HTTP, runs and timelines out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running

RUNBOOKS = {
    "restart": """
        name: restart
        trigger: {"on": [incident_opened], service: [api], matchers: ['alertname="TargetDown"']}
        params:
          instance: {pattern: '^[a-z0-9.:-]+$'}
        steps:
          - name: restart
            exec: {argv: [sh, -c, 'echo "$1" >> "$OUT"', sh, "{{ params.instance }}"], env: {OUT: "OUTFILE"}}
        """,
    "page-first": """
        name: page-first
        trigger: {"on": [incident_opened], matchers: ['alertname="DiskFull"']}
        approval: {required: true, timeout: 1h}
        steps:
          - name: clean
            exec: {argv: ["true"]}
        """,
}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    out = tmp_path / "out.txt"
    books = {name: text.replace("OUTFILE", str(out)) for name, text in RUNBOOKS.items()}
    config = write_setup(tmp_path / "etc", books)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


def iso(clock: ManualClock, offset: float = 0.0) -> str:
    return datetime.fromtimestamp(clock.now() + offset, UTC).isoformat()


async def fire(d: Daemon, **labels: str) -> None:
    status, body = await d.v2([{"labels": labels, "startsAt": iso(d.clock), "endsAt": iso(d.clock, 300)}])
    assert status == 200, body


async def timeline(d: Daemon, incident_id: int, kind: str) -> list[Any]:
    incident = await d.incident(incident_id)
    return [e["detail"] for e in incident["timeline"] if e["kind"] == kind]


async def test_an_opened_incident_starts_its_runbook_with_params_from_labels(daemon: Daemon, tmp_path: Path) -> None:
    await fire(daemon, alertname="TargetDown", service="api", instance="web-1:9100")
    runs = (await daemon.get_json("/api/v1/runs"))["runs"]
    assert len(runs) == 1
    run = await until(daemon, runs[0]["id"])
    assert run["status"] == "succeeded", run["reason"]
    assert (run["trigger"], run["params"], run["service"]) == ("incident_opened", {"instance": "web-1:9100"}, "api")
    assert (tmp_path / "out.txt").read_text() == "web-1:9100\n"
    (incident,) = await daemon.incidents()
    assert run["incident_id"] == incident["id"]
    notes = await timeline(daemon, incident["id"], "runbook_started")
    assert notes == [{"by": "runbooks", "text": f"runbook restart started as run {run['id']} (incident_opened)"}]
    change = await daemon.get_json(f"/api/v1/changes/{run['change_id']}")
    assert (change["incident_id"], change["trigger"], change["outcome"]) == (
        incident["id"],
        "incident_opened",
        "successful",
    )


async def test_other_services_and_alerts_start_nothing(daemon: Daemon) -> None:
    await fire(daemon, alertname="TargetDown", service="db", instance="db-1")
    await fire(daemon, alertname="HighLatency", service="api", instance="web-1")
    assert len(await daemon.incidents()) == 2
    assert (await daemon.get_json("/api/v1/runs"))["runs"] == []


async def test_a_label_value_failing_the_param_pattern_is_noted_not_run(daemon: Daemon, tmp_path: Path) -> None:
    await fire(daemon, alertname="TargetDown", service="api", instance="web-1; rm -rf /")
    (incident,) = await daemon.incidents()
    assert incident["status"] == "open"
    (note,) = await timeline(daemon, incident["id"], "runbook_refused")
    assert note["text"].startswith("runbook restart not started:")
    assert "instance" in note["text"]
    assert (await daemon.get_json("/api/v1/runs"))["runs"] == []
    assert not (tmp_path / "out.txt").exists()


async def test_resolving_the_incident_cancels_a_run_still_waiting_for_approval(daemon: Daemon) -> None:
    labels = {"alertname": "DiskFull", "service": "api", "instance": "web-1"}
    starts = iso(daemon.clock)
    await daemon.v2([{"labels": labels, "startsAt": starts, "endsAt": iso(daemon.clock, 300)}])
    (run,) = (await daemon.get_json("/api/v1/runs"))["runs"]
    await until(daemon, run["id"], "waiting_approval")
    daemon.clock.advance(60)
    status, _ = await daemon.v2([{"labels": labels, "startsAt": starts, "endsAt": iso(daemon.clock)}])
    assert status == 200
    done = await until(daemon, run["id"])
    assert done["status"] == "cancelled"
    assert "resolved" in done["reason"]
    (incident,) = await daemon.incidents()

    async def noted() -> bool:
        return bool(await timeline(daemon, incident["id"], "runbook_cancelled"))

    await eventually(noted)
    status, conflict = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {})
    assert status == 409, conflict
