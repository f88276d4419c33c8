"""Every KPI of DESIGN.md section 4 is on the real /metrics, with bounded labels, at 0 for every catalogue
service and priority from the start, and the wiring kit (integrations/) uses only exported names."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from daemon.clock import ManualClock
from tests.unit.daemon.configfiles import TEST_SERVICES, write
from tests.unit.daemon.ingest.conftest import Daemon, running, write_config

ROOT = Path(__file__).resolve().parents[4]
PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}
SERVICES = {*TEST_SERVICES, "unknown"}
"""The test catalogue and its default service."""

# DESIGN.md section 4: name -> label names (histograms by base name, `le` aside).
KPIS: dict[str, set[str]] = {
    "itsmd_incidents_opened_total": {"service", "priority"},
    "itsmd_incidents_resolved_total": {"service", "priority", "resolved_by"},
    "itsmd_incidents_open": {"service", "priority"},
    "itsmd_incidents_reopened_total": {"service"},
    "itsmd_incident_acknowledge_duration_seconds": {"priority"},
    "itsmd_incident_resolution_duration_seconds": {"priority"},
    "itsmd_incident_sla_breaches_total": {"service", "priority", "target"},
    "itsmd_problems_opened_total": {"service"},
    "itsmd_problems_open": {"service", "status"},
    "itsmd_changes_total": {"service", "change_type", "outcome"},
    "itsmd_changes_causing_incidents_total": {"service"},
    "itsmd_runbook_runs_total": {"runbook", "mode", "outcome"},
    "itsmd_runbook_step_duration_seconds": {"action"},
    "itsmd_runbook_breaker_open": {"runbook"},
    "itsmd_service_downtime_seconds_total": {"service", "planned"},
    "itsmd_service_availability_ratio": {"service", "window"},
    "itsmd_service_availability_objective_ratio": {"service"},
    "itsmd_service_error_budget_remaining_ratio": {"service", "window"},
    "itsmd_alerts_received_total": {"source"},
    "itsmd_alerts_rejected_total": {"reason"},
    "itsmd_ingest_duration_seconds": set(),
    "itsmd_build_info": {"version", "python"},
}
# Continuity metrics have series only for services that have drills (a recovery time of 0 for a service
# never drilled would be a lie); this catalogue declares none, so they are checked for presence and labels.
# tests/unit/daemon/api/test_drills.py checks their values with drills declared.
DRILL_METRICS = {
    "itsmd_drills_total",
    "itsmd_drill_recovery_seconds",
    "itsmd_drill_rto_seconds",
    "itsmd_drill_last_success_timestamp_seconds",
    "itsmd_drill_never_passed",
}
# Values of a fresh store that are not 0: ratios start at 1 (nothing down yet), objectives are configured.
NOT_ZERO_AT_START = {
    "itsmd_service_availability_ratio",
    "itsmd_service_availability_objective_ratio",
    "itsmd_service_error_budget_remaining_ratio",
    "itsmd_build_info",
}


class Exported:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def family(self, name: str) -> tuple[str, list[dict[str, str]], list[float]]:
        """(type, label sets, values) of a family given by its exposition name."""
        base = name.removesuffix("_total") if name.endswith("_total") else name
        f = self.families.get(base) or self.families.get(name)
        assert f is not None, f"{name} is not on /metrics"
        samples = [s for s in f.samples if not s.name.endswith(("_created", "_bucket"))]
        return f.type, [{k: v for k, v in s.labels.items() if k != "le"} for s in samples], [s.value for s in samples]


async def _exported(d: Daemon) -> Exported:
    async with d.client.get("/metrics") as resp:
        assert resp.status == 200
        return Exported(await resp.text())


async def test_every_kpi_is_exported_bounded_and_preinitialised(tmp_path: Path) -> None:
    clock = ManualClock(start=1_790_000_000.0)
    write(tmp_path / "etc" / "runbooks" / "pause.yaml", "name: pause\nsteps:\n  - {name: x, sleep: {duration: 1s}}\n")
    async with running(write_config(tmp_path / "etc"), tmp_path / "data", clock) as d:
        exported = await _exported(d)
    for name, label_names in KPIS.items():
        _, label_sets, values = exported.family(name)
        assert label_sets, f"{name} has no series on a fresh start"
        for labels in label_sets:
            assert set(labels) == label_names, (name, labels)
            assert labels.get("service", "unknown") in SERVICES | {"none"}, (name, labels)
            assert labels.get("priority", "P1") in PRIORITIES, (name, labels)
        if "service" in label_names:
            assert {ls["service"] for ls in label_sets} >= SERVICES, f"{name} lacks catalogue services"
        if "priority" in label_names:
            assert {ls["priority"] for ls in label_sets} == PRIORITIES, f"{name} lacks priorities"
        if "service" in label_names and "priority" in label_names:
            pairs = {(ls["service"], ls["priority"]) for ls in label_sets}
            assert pairs >= {(s, p) for s in SERVICES for p in PRIORITIES}, name
        if name not in NOT_ZERO_AT_START:
            assert set(values) == {0.0}, (name, set(values))
    for name in DRILL_METRICS:
        assert name.removesuffix("_total") in exported.families, f"{name} is not on /metrics"
        _, label_sets, _ = exported.family(name)
        assert all(set(labels) <= {"service", "outcome"} for labels in label_sets), name


async def test_the_wiring_kit_lists_only_exported_metrics(tmp_path: Path) -> None:
    listed = {
        line.strip()
        for line in (ROOT / "tests" / "testdata" / "exported_metrics.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    async with running(write_config(tmp_path / "etc"), tmp_path / "data", ManualClock(start=1_790_000_000.0)) as d:
        exported = await _exported(d)
    names = set()
    for f in exported.families.values():
        names.add(f.name)
        if f.type == "counter":
            names.add(f"{f.name}_total")
    assert listed <= names, sorted(listed - names)
    assert set(KPIS) | DRILL_METRICS <= listed


async def test_counters_never_go_down_across_a_restart(tmp_path: Path) -> None:
    config, data = write_config(tmp_path / "etc"), tmp_path / "data"
    clock = ManualClock(start=1_790_000_000.0)
    fire = [{"labels": {"alertname": "Down", "service": "api", "severity": "critical"}}]
    async with running(config, data, clock) as d:
        status, _ = await d.v2(fire)
        assert status == 200
        clock.advance(120)
        before = await d.metrics()
    clock.advance(60)
    async with running(config, data, clock) as d:
        after = await d.metrics()
    counters = {k: v for k, v in before.items() if k[0].endswith(("_total", "_count", "_sum", "_bucket"))}
    assert counters[("itsmd_incidents_opened_total", frozenset({("service", "api"), ("priority", "P2")}))] == 1
    assert after[("itsmd_service_downtime_seconds_total", frozenset({("service", "api"), ("planned", "false")}))] == 180
    for key, value in counters.items():
        if key[0].startswith("process_"):
            continue
        assert after.get(key, 0.0) >= value, key
