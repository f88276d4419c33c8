"""The service report from a real store: the app records incidents, the report reads the store read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon import cli
from daemon.clock import ManualClock
from daemon.config import LoadedConfig
from daemon.report.produce import MonthlyReports, previous_month, produce
from daemon.storage.backends import backend_for
from daemon.storage.reading import connected
from tests.postgres import ADMIN_DSN, ON_POSTGRES, store_args
from tests.unit.daemon.availability.test_tracker import _config, _post
from tests.unit.daemon.configfiles import load_test_config
from tests.unit.daemon.ingest.conftest import epoch, running


def report_of(loaded: LoadedConfig, period: str, **kwargs: Any) -> str:
    """`produce` on the store the test's daemon wrote, as `itsmd report` reads it."""
    with connected(backend_for(loaded)) as backend:
        return produce(backend, loaded.rules.catalogue, period, **kwargs)


def report_args(config: Path, data: Path) -> list[str]:
    """`itsmd report`'s arguments for the store of `data` on the backend under test."""
    args = store_args(config, data)
    return args if "--config" in args else ["--config", str(config), *args]


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
    loaded = load_test_config(config, data_dir=data)
    # The month is over: every day counts in full (the CLI below uses the wall clock).
    text = report_of(loaded, "2026-11", now=epoch("2026-12-01T06:00:00Z"))
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
    # The store's first record is the audit chain's first event, written when the daemon first started, 18:15 on
    # the 23rd: the span starts there, so the days before have no bar and the 23rd counts from 18:15.
    first = epoch("2026-11-23T18:15:00Z")
    assert report["coverage"]["start"] == first and report["coverage"]["from_first_record"] is True
    assert [x["day"] for x in api["daily"]] == [f"2026-11-{d}" for d in range(23, 31)]
    day = api["daily"][0]
    assert day["partial"] is True and not any(x["partial"] for x in api["daily"][1:])
    assert abs(day["availability_ratio"] - (1 - 1200 / (epoch("2026-11-24T00:00:00Z") - first - 1800))) < 1e-12
    db = next(s for s in report["services"] if s["service"] == "db")
    assert db["unplanned_downtime_seconds"] == 1200
    assert db["incidents_by_priority"]["P3"] == 1
    html = tmp_path / "report.html"
    assert cli.main(["report", "--period", "2026-11", "--service", "api", *report_args(config, data),
                     "--output", str(html)]) == 0  # fmt: skip
    text = html.read_text()
    assert "<svg" in text and "api" in text and "db" not in text.split("<body", 1)[1].split("<svg", 1)[0]


async def test_bad_period_and_unknown_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, data, clock = await _store(tmp_path)
    base = ["report", *report_args(config, data)]
    assert cli.main([*base, "--period", "2026-13"]) == 2
    assert cli.main([*base, "--period", "2026-11", "--service", "nope"]) == 2
    if ON_POSTGRES:  # no store: a database that does not exist
        monkeypatch.setenv("ITSMD_TEST_NO_SUCH_DB", f"{ADMIN_DSN} dbname=itsmd_test_no_such_database")
        absent = config.with_name("absent.yaml")
        absent.write_text(
            config.read_text() + "storage: {backend: postgres, dsn_env: ITSMD_TEST_NO_SUCH_DB}\n"
            f"audit: {{key_file: {data / 'audit.key'}}}\nrunbooks: {{digest_key_file: {data / 'digest.key'}}}\n"
        )
        capsys.readouterr()
        assert cli.main(["report", "--config", str(absent), "--period", "2026-11"]) == 1
        assert "itsmd report: cannot connect to PostgreSQL" in capsys.readouterr().err
    else:
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
    loaded = load_test_config(config, data_dir=data)
    with connected(backend_for(loaded)) as backend:  # the daemon gives the job its open store
        job = MonthlyReports(
            backend, lambda: loaded.rules.catalogue, tmp_path / "reports", clock, time_zone="UTC",
            formats=("html", "json"),
        )  # fmt: skip
        written = job.write()
    assert [p.name for p in written] == ["itsmd-report-2026-11.html", "itsmd-report-2026-11.json"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [p.name for p in written]
    assert json.loads(written[1].read_text())["period"] == "2026-11"


async def test_a_month_not_over_is_reported_to_date_over_the_span_it_covers(tmp_path: Path) -> None:
    config, data, _ = await _store(tmp_path)
    loaded = load_test_config(config, data_dir=data)
    now = epoch("2026-11-23T20:00:00Z")
    report = json.loads(report_of(loaded, "2026-11", now=now))
    cover = report["coverage"]
    first = epoch("2026-11-23T18:15:00Z")  # the daemon's first start (the audit chain's first event)
    assert (cover["start"], cover["end"], cover["to_date"], cover["no_data"]) == (first, now, True, False)
    assert cover["statement"] == (
        "Figures cover the period to date: 2026-11-23 18:15:00 UTC (the store's first record) to "
        "2026-11-23 20:00:00 UTC (the time of this report)."
    )
    api = next(s for s in report["services"] if s["service"] == "api")
    # Agreed time is the span, 105 min, less the 30 min maintenance window in it: 75 min, not 30 days.
    agreed = (now - first) - 1800
    assert api["availability_ratio"] == 1 - 1200 / agreed
    # The error budget is that of the span covered, and said to be: 1 % of 75 min.
    assert api["error_budget_seconds"] == (1 - 0.99) * agreed
    assert api["error_budget_remaining_ratio"] == 1 - 1200 / ((1 - 0.99) * agreed)
    md = report_of(loaded, "2026-11", now=now, fmt="md")
    assert md.startswith("# Service report 2026-11 (to date)\n")
    assert cover["statement"] in md and "| NO so far |" in md and "of the span's budget" in md
    html = report_of(loaded, "2026-11", now=now, fmt="html")
    assert cover["statement"].replace("'", "&#39;") in html and "<h1>Service report 2026-11 (to date)</h1>" in html

    # The next month, early on its first day: the span starts at the month's start, in the report's time zone.
    berlin = json.loads(
        report_of(loaded, "2026-12", now=epoch("2026-12-01T06:00:00Z"),
            time_zone="Europe/Berlin",
        )
    )  # fmt: skip
    assert berlin["coverage"]["start_local"] == "2026-12-01T00:00:00+01:00"
    assert berlin["coverage"]["end_local"] == "2026-12-01T07:00:00+01:00"
    assert berlin["coverage"]["statement"] == (
        "Figures cover the period to date: 2026-12-01 00:00:00 CET (+0100) to 2026-12-01 07:00:00 CET (+0100) "
        "(the time of this report)."
    )
    api = next(s for s in berlin["services"] if s["service"] == "api")
    assert api["availability_ratio"] == 1.0 and [d["day"] for d in api["daily"]] == ["2026-12-01"]


async def test_a_month_before_the_first_record_or_in_the_future_has_no_data(tmp_path: Path) -> None:
    config, data, _ = await _store(tmp_path)
    loaded = load_test_config(config, data_dir=data)
    now = epoch("2026-12-01T06:00:00Z")
    for period, why in (
        ("2026-10", "the period ends before the store's first record (2026-11-23 18:15:00 UTC)"),
        ("2027-01", "the period has not begun"),
    ):
        report = json.loads(report_of(loaded, period, now=now))
        assert report["coverage"]["no_data"] is True and report["coverage"]["start"] is None
        assert report["coverage"]["statement"] == f"No data: {why}; no availability or error budget is stated."
        api = next(s for s in report["services"] if s["service"] == "api")
        assert (api["availability_ratio"], api["met_objective"], api["error_budget_remaining_ratio"]) == (
            None,
            None,
            None,
        )
        assert api["daily"] == []
        md = report_of(loaded, period, now=now, fmt="md")
        assert f"# Service report {period} (no data)" in md
        assert "| api |  | no data | 99.000 % | no data | no data | no data | no data |" in md
        assert "100.000 %" not in md and "yes" not in md
        html = report_of(loaded, period, now=now, fmt="html")
        assert "no data" in html and "100.000 %" not in html
