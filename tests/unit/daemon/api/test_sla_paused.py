"""`sla.paused` says whether the SLA clock stands still now, and `paused_by` why: a pause status, or a
maintenance window of the incident's service (which pauses the clock without changing the record)."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.availability.test_tracker import _post
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running

SERVICES = """\
pause_statuses: [acknowledged]
services:
  - name: api
    tier: high
    maintenance:
      - {name: upgrade, start: "2026-11-23T19:00:00Z", end: "2026-11-23T19:30:00Z"}
"""
DOWN = {"alertname": "ApiDown", "service": "api", "severity": "critical"}


async def _sla(d: Daemon) -> dict[str, object]:
    incident = await d.incident(1)
    listed = (await d.incidents("active"))[0]["sla"]
    assert listed == incident["sla"]  # the list says the same as the detail
    sla: dict[str, object] = incident["sla"]
    return sla


async def test_paused_by_maintenance_then_by_status(tmp_path: Path) -> None:
    write(tmp_path / "etc" / "rules" / "services.yaml", SERVICES)
    write(tmp_path / "etc" / "rules" / "correlation.yaml", "{}\n")
    config = write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\n")
    clock = ManualClock(start=epoch("2026-11-23T18:50:00Z"))
    async with running(config, tmp_path / "data", clock) as d:
        await _post(d, DOWN, firing=True)
        sla = await _sla(d)
        assert (sla["paused"], sla["paused_by"]) == (False, None)
        d.at("2026-11-23T19:10:00Z")
        sla = await _sla(d)
        assert (sla["paused"], sla["paused_by"]) == (True, "maintenance")
        d.at("2026-11-23T19:40:00Z")
        sla = await _sla(d)
        assert (sla["paused"], sla["paused_by"]) == (False, None)
        status, answer = await d.post("/api/v1/incidents/1/acknowledge", {"by": "alice"})
        assert status == 200
        assert (answer["sla"]["paused"], answer["sla"]["paused_by"]) == (True, "status")
        sla = await _sla(d)
        assert (sla["paused"], sla["paused_by"]) == (True, "status")
