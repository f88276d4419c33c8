"""The service report from a real store: the app records incidents, the report reads the file read-only."""

from __future__ import annotations

import json
from pathlib import Path

from daemon import cli
from daemon.clock import ManualClock
from daemon.config import load_config
from daemon.report.produce import MonthlyReports, previous_month, produce
from tests.unit.daemon.availability.test_tracker import _config, _post
from tests.unit.daemon.ingest.conftest import epoch, running


async def _store(tmp_path: Path) -> tuple[Path, Path, ManualClock]:
    """Two P1 outages of api (one partly in its maintenance window), one acknowledged; a db incident."""
    config, data = _config(tmp_path), tmp_path / "data"
    clock = ManualClock(start=epoch("2026-11-23T18:15:00Z"))
    api_down = {"alertname": "ApiDown", "service": "api", "severity": "critical"}
    db_slow = {"alertname": "DbSlow", "service": "db", "severity": "warning", "team": "dba"}
    async with running(config, data, clock) as d:
        d.at("2026-11-23T18:20:00Z")
        await _post(d, api_down, firing=True)
        d.at("2026-11-23T18:25:00Z")
        status, _ = await d.post("/api/v1/incidents/1/acknowledge", {"by": "alice"})
        assert status == 200
        d.at("2026-11-23T18:30:00Z")
        await _post(d, api_down, firing=False)
        d.at("2026-11-23T19:20:00Z")
        await _post(d, {**api_down, "instance": "b"}, firing=True)  # a new incident: the first one resolved
        await _post(d, db_slow, firing=True)
        d.at("2026-11-23T19:40:00Z")
        await _post(d, {**api_down, "instance": "b"}, firing=False)
        await _post(d, db_slow, firing=False)
    return config, data, clock


async def test_report_from_the_store(tmp_path: Path) -> None:
    config, data, _ = await _store(tmp_path)
    loaded = load_config(config, data_dir=data)
    # The month is over: every day counts in full (the CLI below uses the wall clock).
    text = produce(loaded.db_path, loaded.rules.catalogue, "2026-11", now=epoch("2026-12-01T06:00:00Z"))
    report = json.loads(text)
    api = next(s for s in report["services"] if s["service"] == "api")
    # 10 min (18:20-18:30) + 10 min outside maintenance (19:30-19:40) unplanned; 10 min inside it planned.
    assert api["unplanned_downtime_seconds"] == 1200
    assert api["planned_downtime_seconds"] == 600
    assert api["incidents_by_priority"]["P1"] == 2
    assert api["mtta_seconds"] == 300
    assert api["mttr_seconds"] == (600 + 1200) / 2
    respond = next(f for f in api["sla"] if f["target"] == "respond")
    assert (respond["met"], respond["breached"]) == (2, 0)
    assert api["objective_ratio"] == 0.99
    assert len(api["daily"]) == 30
    day = next(x for x in api["daily"] if x["day"] == "2026-11-23")
    assert abs(day["availability_ratio"] - (1 - 1200 / (86400 - 1800))) < 1e-12
    db = next(s for s in report["services"] if s["service"] == "db")
    assert db["unplanned_downtime_seconds"] == 1200
    assert db["incidents_by_priority"]["P3"] == 1
    html = tmp_path / "report.html"
    assert cli.main(["report", "--period", "2026-11", "--service", "api", "--config", str(config),
                     "--data-dir", str(data), "--output", str(html)]) == 0  # fmt: skip
    text = html.read_text()
    assert "<svg" in text and "api" in text and "db" not in text.split("<body", 1)[1].split("<svg", 1)[0]


async def test_bad_period_and_unknown_service(tmp_path: Path) -> None:
    config, data, clock = await _store(tmp_path)
    base = ["report", "--config", str(config), "--data-dir", str(data)]
    assert cli.main([*base, "--period", "2026-13"]) == 2
    assert cli.main([*base, "--period", "2026-11", "--service", "nope"]) == 2
    assert cli.main([*base, "--period", "2026-11", "--data-dir", str(tmp_path / "empty")]) == 1
    async with running(config, data, clock) as d:
        async with d.client.get("/api/v1/reports/2026-13") as resp:
            assert resp.status == 400
            assert (await resp.json())["reason"] == "invalid_period"
        async with d.client.get("/api/v1/reports/2026-11?format=pdf") as resp:
            assert resp.status == 400
        async with d.client.get("/api/v1/reports/2026-11?service=nope") as resp:
            assert resp.status == 404
        async with d.client.get("/api/v1/reports/2026-11?service=api&format=md") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/markdown"
            assert "api" in await resp.text()
        body = await d.get_json("/api/v1/reports/2026-11")
        assert {s["service"] for s in body["services"]} == {"api", "db", "unknown"}


async def test_monthly_job_writes_last_month_atomically(tmp_path: Path) -> None:
    config, data, clock = await _store(tmp_path)
    clock.advance(epoch("2026-12-01T06:00:00Z") - clock.now())
    assert previous_month(clock.now(), "UTC") == "2026-11"
    loaded = load_config(config, data_dir=data)
    job = MonthlyReports(
        loaded.db_path, lambda: loaded.rules.catalogue, tmp_path / "reports", clock, time_zone="UTC",
        formats=("html", "json"),
    )  # fmt: skip
    written = job.write()
    assert [p.name for p in written] == ["itsmd-report-2026-11.html", "itsmd-report-2026-11.json"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [p.name for p in written]
    assert json.loads(written[1].read_text())["period"] == "2026-11"
