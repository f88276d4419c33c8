"""An incident whose alert expired (its resolve lost) ends at the alert's last-seen time, says so in the API,
and the report's MTTR and downtime use that end and say how many ends are estimated."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.availability.test_tracker import SERVICES, _post
from tests.unit.daemon.configfiles import load_test_config, write
from tests.unit.daemon.ingest.conftest import epoch, eventually, running
from tests.unit.daemon.report.test_build import report_of

DOWN = {"alertname": "ApiDown", "service": "api", "severity": "critical"}


async def test_expired_alert_ends_the_incident_at_last_seen_in_api_and_report(tmp_path: Path) -> None:
    write(tmp_path / "etc" / "rules" / "services.yaml", SERVICES)
    write(tmp_path / "etc" / "rules" / "correlation.yaml", "{}\n")
    config = write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\nalerts:\n  sweep_interval: 20ms\n")
    data = tmp_path / "data"
    clock = ManualClock(start=epoch("2026-11-23T18:20:00Z"))
    async with running(config, data, clock) as d:
        await _post(d, DOWN, firing=True)  # posted with endsAt an hour ahead, as Prometheus would
        d.at("2026-11-23T18:25:00Z")
        await _post(d, DOWN, firing=True)  # the last word: then the resolve is lost
        d.at("2026-11-23T19:30:00Z")  # past the endsAt of 19:25: the alert expires

        async def resolved() -> bool:
            return bool((await d.incident(1))["status"] == "resolved")

        await eventually(resolved)
        incident = await d.incident(1)
        assert incident["resolved_at"] == "2026-11-23T18:25:00.000Z"
        assert incident["resolution"] == {
            "ended_at": "2026-11-23T18:25:00.000Z",
            "recorded_at": "2026-11-23T19:30:00.000Z",
            "resolved_by": "expiry",
            "end_estimated": True,
            "end_source": "last_seen",
        }
    loaded = load_test_config(config, data_dir=data)
    report = json.loads(report_of(loaded, "2026-11", now=epoch("2026-12-01T06:00:00Z")))
    api = next(s for s in report["services"] if s["service"] == "api")
    assert api["mttr_seconds"] == 300
    assert api["unplanned_downtime_seconds"] == 300
    assert api["estimated_ends"] == 1
    markdown = report_of(loaded, "2026-11", now=epoch("2026-12-01T06:00:00Z"), fmt="md")
    assert "(1 estimated end: alerts expired without a resolve)" in markdown
