"""Availability on /metrics equals what the stored incidents say, before and after a restart.

The real app on a real store (the backend under test); alerts posted over HTTP at ManualClock times. The
expected figures are recomputed here from the store with SQL of this test's own (timeline marks, incident
service, the opening alert's labels) and the catalogue below, not with the tracker's code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.availability.intervals import Interval, clip, intersect, merge, subtract, total
from daemon.clock import ManualClock
from tests.postgres import stored
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running, series

SERVICES = """\
default_availability_objective: 0.999
services:
  - name: api
    tier: high
    availability_objective: 0.99
    maintenance:
      - name: upgrade
        start: "2026-11-23T19:00:00Z"
        end: "2026-11-23T19:30:00Z"
  - name: db
    tier: medium
    downtime:
      priorities: [P1, P2, P3]
      matchers: ['team="dba"']
"""
MAINTENANCE = {"api": [(epoch("2026-11-23T19:00:00Z"), epoch("2026-11-23T19:30:00Z"))]}
COUNTED = {"api": ("P1", "P2"), "db": ("P1", "P2", "P3")}
DAY = 86400.0


def _config(tmp_path: Path) -> Path:
    write(tmp_path / "etc" / "rules" / "services.yaml", SERVICES)
    write(tmp_path / "etc" / "rules" / "correlation.yaml", "{}\n")
    return write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\n")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


_STARTS: dict[tuple[int, frozenset[tuple[str, str]]], float] = {}
"""startsAt of each alert's episode, so a resolve names the episode it ends (a resolve with a later startsAt
would say the episode ended when that one began)."""


async def _post(d: Daemon, labels: dict[str, str], *, firing: bool) -> None:
    now = d.clock.now()
    key = (id(d.clock), frozenset(labels.items()))
    starts = _STARTS.setdefault(key, now - 1) if firing else _STARTS.pop(key, now - 1)
    body = [{"labels": labels, "startsAt": _iso(starts), "endsAt": _iso(now + 3600 if firing else now)}]
    status, answer = await d.v2(body)
    assert status == 200, answer


def _recompute(data_dir: Path, now: float) -> dict[str, tuple[float, float]]:
    """(unplanned, planned) downtime per service from the stored timeline, by this test's own reading."""
    with stored(data_dir) as sql:
        rows = [
            (r["incident_id"], r["service"], r["at"], r["kind"], r["detail"])
            for r in sql.rows(
                "SELECT t.incident_id, i.service, t.at, t.kind, t.detail FROM timeline t JOIN incidents i "
                "ON i.id = t.incident_id WHERE t.kind IN ('opened', 'reopened', 'priority_raised', 'resolved') "
                "ORDER BY t.id"
            )
        ]
        labels_of = {
            r["fingerprint"]: json.loads(r["labels"]) for r in sql.rows("SELECT fingerprint, labels FROM alerts")
        }
    state: dict[int, dict[str, Any]] = {}
    outages: dict[str, list[Interval]] = {}

    def counts(s: dict[str, Any]) -> bool:
        if s["service"] == "db" and s["labels"].get("team") != "dba":
            return False
        return s["priority"] in COUNTED.get(s["service"], ("P1", "P2"))

    for incident_id, service, at, kind, detail in rows:
        data = json.loads(detail)
        if kind == "opened":
            state[incident_id] = {
                "service": service,
                "priority": data["priority"],
                "labels": labels_of[data["alert"]],
                "start": at,
            }
            continue
        s = state[incident_id]
        if kind == "reopened":
            s["start"] = at
        elif kind == "priority_raised":
            s["priority"] = data["to"]
        elif kind == "resolved":
            if counts(s):  # an outage ends when the incident ended, which may be before it was recorded
                outages.setdefault(service, []).append((s["start"], data.get("ended_at", at)))
            s["start"] = None
    for s in state.values():
        if s["start"] is not None and counts(s):
            outages.setdefault(s["service"], []).append((s["start"], now))
    out = {}
    for service in ("api", "db", "unknown"):
        down = merge(outages.get(service, []))
        planned = merge(MAINTENANCE.get(service, []))
        out[service] = (total(subtract(down, planned)), total(intersect(clip(down, 0, now), planned)))
    return out


async def _check(d: Daemon, data: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    now = d.clock.now()
    metrics = await d.metrics()
    for service, (unplanned, planned) in _recompute(data, now).items():
        assert metrics[series("itsmd_service_downtime_seconds_total", service=service, planned="false")] == unplanned
        assert metrics[series("itsmd_service_downtime_seconds_total", service=service, planned="true")] == planned
    return metrics


async def test_metrics_equal_the_stored_history_across_a_restart(tmp_path: Path) -> None:
    config, data = _config(tmp_path), tmp_path / "data"
    clock = ManualClock(start=epoch("2026-11-23T18:15:00Z"))
    api_down = {"alertname": "ApiDown", "service": "api", "severity": "critical"}
    db_slow = {"alertname": "DbSlow", "service": "db", "severity": "warning", "team": "dba"}
    db_lag = {"alertname": "DbLag", "service": "db", "severity": "warning"}
    api_slow_info = {"alertname": "ApiSlow", "service": "api", "severity": "info", "instance": "a"}
    api_slow_crit = {"alertname": "ApiSlow", "service": "api", "severity": "critical", "instance": "b"}
    async with running(config, data, clock) as d:
        metrics = await d.metrics()
        for service in ("api", "db", "unknown"):
            assert metrics[series("itsmd_service_downtime_seconds_total", service=service, planned="false")] == 0
            for window in ("1d", "7d", "30d"):
                assert metrics[series("itsmd_service_availability_ratio", service=service, window=window)] == 1.0
                remaining = series("itsmd_service_error_budget_remaining_ratio", service=service, window=window)
                assert metrics[remaining] == 1.0
        assert metrics[series("itsmd_service_availability_objective_ratio", service="api")] == 0.99
        assert metrics[series("itsmd_service_availability_objective_ratio", service="db")] == 0.999

        d.at("2026-11-23T18:16:00Z")
        await _post(d, api_down, firing=True)  # P1: counts
        d.at("2026-11-23T18:20:00Z")
        metrics = await _check(d, data)
        # The counter grows while the outage is open, not only when it ends.
        assert metrics[series("itsmd_service_downtime_seconds_total", service="api", planned="false")] == 240
        d.at("2026-11-23T18:30:00Z")
        await _post(d, api_down, firing=False)
        d.at("2026-11-23T18:40:00Z")
        await _post(d, db_slow, firing=True)  # P3 with team=dba: counts for db
        await _post(d, db_lag, firing=True)  # P3 without the team: does not
        d.at("2026-11-23T18:45:00Z")
        await _post(d, db_slow, firing=False)
        await _post(d, db_lag, firing=False)
        d.at("2026-11-23T18:50:00Z")
        await _post(d, api_slow_info, firing=True)  # P3 on api: not downtime yet
        d.at("2026-11-23T18:55:00Z")
        await _check(d, data)
        await _post(d, api_slow_crit, firing=True)  # raised to P1: counts from 18:50
        d.at("2026-11-23T19:10:00Z")  # 10 minutes into the maintenance window
        metrics = await _check(d, data)
        assert metrics[series("itsmd_service_downtime_seconds_total", service="api", planned="false")] == 840 + 600
        assert metrics[series("itsmd_service_downtime_seconds_total", service="api", planned="true")] == 600
        assert metrics[series("itsmd_service_downtime_seconds_total", service="db", planned="false")] == 300

    # Restarted with the api outage still open.
    async with running(config, data, clock) as d:
        d.at("2026-11-23T19:20:00Z")
        metrics = await _check(d, data)
        assert metrics[series("itsmd_service_downtime_seconds_total", service="api", planned="true")] == 1200
        d.at("2026-11-23T19:40:00Z")
        await _post(d, api_slow_info, firing=False)
        await _post(d, api_slow_crit, firing=False)
        d.at("2026-11-23T19:45:00Z")
        await _post(d, api_slow_crit, firing=True)  # reopens the P1 incident: counts again
        d.at("2026-11-23T19:50:00Z")
        metrics = await _check(d, data)
        unplanned = 840 + 600 + 600 + 300
        assert metrics[series("itsmd_service_downtime_seconds_total", service="api", planned="false")] == unplanned
        agreed = DAY - 1800
        ratio = metrics[series("itsmd_service_availability_ratio", service="api", window="1d")]
        assert abs(ratio - (1 - unplanned / agreed)) < 1e-12
        budget = metrics[series("itsmd_service_error_budget_remaining_ratio", service="api", window="1d")]
        assert abs(budget - (1 - unplanned / (0.01 * agreed))) < 1e-9

    async with running(config, data, clock) as d:
        d.at("2026-11-23T19:55:00Z")
        await _check(d, data)
