"""The wiring kit: scrape config, alerting rules (with promtool's own unit tests) and the Grafana dashboard.

promtool (Prometheus 2.42's, on PATH or at $PROMTOOL_BIN) checks the config and rules and runs
itsmd.rules.test.yml; every dashboard query is checked by promtool too, as a recording rule. Every metric
name they use must be in tests/testdata/exported_metrics.txt, the one list of what itsmd exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
PROMETHEUS_DIR = REPO / "integrations" / "prometheus"
RULES = PROMETHEUS_DIR / "itsmd.rules.yml"
DASHBOARD = REPO / "integrations" / "grafana" / "itsmd-dashboard.json"
WIRING_DOC = REPO / "docs" / "wiring.md"
EXPORTED = REPO / "tests" / "testdata" / "exported_metrics.txt"

METRIC = re.compile(r"\bitsmd_[a-z0-9_]+\b")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# Grafana's variables, replaced by values of the same kind so that promtool can parse the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "7d", "$service": ".*", "$window": "30d"}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    path = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool")
    if path is None:  # CI installs it with the prometheus package: missing is a failure, not a skip
        pytest.fail("promtool is not on PATH and $PROMTOOL_BIN is not set (apt-get install prometheus)")
    done = subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def exported() -> set[str]:
    lines = (line.strip() for line in EXPORTED.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def family(series_name: str, known: set[str]) -> str:
    """itsmd_x_bucket -> itsmd_x when itsmd_x is a known histogram; otherwise the name itself."""
    for suffix in HISTOGRAM_SERIES:
        base = series_name.removesuffix(suffix)
        if base != series_name and base in known:
            return base
    return series_name


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    return queries


def test_scrape_config_and_its_rules_pass_promtool_check() -> None:
    out = promtool("check", "config", "scrape.yml")
    assert "SUCCESS: 1 rule files found" in out


def test_rules_pass_promtool_check() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in promtool("check", "rules", str(RULES))


def test_rules_pass_their_promtool_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "itsmd.rules.test.yml")


def test_every_alert_has_severity_summary_and_a_documented_runbook() -> None:
    doc = WIRING_DOC.read_text()
    anchors = {
        "#" + re.sub(r"[^a-z0-9-]", "", h.lower().replace(" ", "-")) for h in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/wiring.md", rule["alert"]
        assert f"#{anchor}" in anchors, f"{rule['alert']}: docs/wiring.md has no heading for #{anchor}"
        assert anchor == rule["alert"].lower()


def test_dashboard_queries_parse_in_promtool(tmp_path: Path) -> None:
    records = []
    for n, written in enumerate(dashboard_queries()):
        query = written
        if query.startswith("label_values("):
            metric = query.removeprefix("label_values(").split(",")[0]
            query = f"count by (x) ({metric})"  # a metric name is all that is left to check
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"an unknown Grafana variable in {written!r}"
        records.append({"record": f"dashboard:query_{n}", "expr": query})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    assert f"SUCCESS: {len(records)} rules found" in promtool("check", "rules", str(path), cwd=tmp_path)


def test_dashboard_panels_are_well_formed() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "service", "window"} <= variables
    for p in board["panels"]:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    used = {family(name, exported()) for q in dashboard_queries() for name in METRIC.findall(q)}
    for needed in (
        "itsmd_service_availability_ratio",
        "itsmd_service_availability_objective_ratio",
        "itsmd_service_error_budget_remaining_ratio",
        "itsmd_incidents_open",
        "itsmd_incident_acknowledge_duration_seconds",
        "itsmd_incident_resolution_duration_seconds",
        "itsmd_incident_sla_breaches_total",
        "itsmd_changes_total",
        "itsmd_drills_total",
        "itsmd_drill_last_success_timestamp_seconds",
    ):
        assert needed in used, needed


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_only_exported_metrics_are_used(source: str) -> None:
    known = exported()
    texts = [r["expr"] for r in rules()] if source == "rules" else dashboard_queries()
    used = {family(name, known) for text in texts for name in METRIC.findall(text)}
    assert used, "no itsmd metric found at all"
    assert used <= known, f"not in {EXPORTED.name}: {sorted(used - known)}"
