"""Availability back in Prometheus: the real Prometheus scrapes itsmd, the test target goes down long enough
for a P1 incident to open and resolve, and PromQL over itsmd's metrics gives the downtime and availability
that the incident's stored open and resolve times imply.

Every step waits for what itsmd or Prometheus reports, never for a fixed time.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from .client import get_json, wait_for
from .stack import HOST, SERVICE, Stack, module_stack

pytestmark = pytest.mark.e2e
STEP_TIMEOUT = 30.0
DAY = 86_400.0
MIN_OUTAGE = 2.0
"""Seconds of downtime itsmd must report before the target comes back, so the figure is not a rounding."""


class AvailabilityStack(Stack):
    def write_configs(self) -> None:
        super().write_configs()
        prometheus = yaml.safe_load((self.etc / "prometheus.yml").read_text())
        prometheus["scrape_configs"].append(
            {"job_name": "itsmd", "static_configs": [{"targets": [f"{HOST}:{self.itsmd_port}"]}]}
        )
        (self.etc / "prometheus.yml").write_text(yaml.safe_dump(prometheus))


@pytest.fixture(scope="module")
def astack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AvailabilityStack]:
    yield from module_stack(AvailabilityStack, tmp_path_factory.mktemp("e2e-availability"))


def promql(stack: Stack, query: str) -> float | None:
    answer = get_json(f"{stack.prom_url}/api/v1/query?query={urllib.parse.quote(query)}")
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def incidents(stack: Stack) -> list[dict[str, Any]]:
    stack.itsmd.check_alive()
    found = get_json(f"{stack.itsmd_url}/api/v1/incidents?status=all")["incidents"]
    return [i for i in found if i["service"] == SERVICE]


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_outage_downtime_and_availability_in_prometheus(astack: AvailabilityStack) -> None:
    downtime = f'itsmd_service_downtime_seconds_total{{service="{SERVICE}",planned="false"}}'
    ratio = f'itsmd_service_availability_ratio{{service="{SERVICE}",window="1d"}}'
    before = wait_for(
        lambda: promql(astack, ratio),
        lambda v: v is not None,
        timeout=STEP_TIMEOUT,
        what="itsmd's availability scraped by Prometheus",
        describe=astack.itsmd.tail,
    )
    assert before == 1.0
    assert promql(astack, downtime) == 0.0

    astack.set_target_down(True)
    [incident] = wait_for(
        lambda: incidents(astack),
        lambda found: len(found) == 1 and found[0]["status"] == "open",
        timeout=STEP_TIMEOUT,
        what=f"an open incident of {SERVICE}",
        describe=astack.itsmd.tail,
    )
    assert incident["priority"] == "P1"  # tier high x severity critical: counts as downtime by default
    # While the outage is open the counter keeps rising, in Prometheus too.
    wait_for(
        lambda: promql(astack, downtime),
        lambda v: v is not None and v >= MIN_OUTAGE,
        timeout=STEP_TIMEOUT,
        what="downtime rising while the incident is open",
    )

    astack.set_target_down(False)
    [incident] = wait_for(
        lambda: incidents(astack),
        lambda found: len(found) == 1 and found[0]["status"] == "resolved",
        timeout=STEP_TIMEOUT,
        what=f"the incident of {SERVICE} resolved",
        describe=astack.itsmd.tail,
    )
    # The stored record decides the figure: from when the incident opened to when it resolved (API times
    # are in milliseconds, hence the tolerance).
    expected = epoch(incident["resolved_at"]) - epoch(incident["opened_at"])
    assert expected >= MIN_OUTAGE

    def settled() -> float | None:
        value = promql(astack, downtime)
        # Prometheus still holds a sample from before the resolve until its next scrape of itsmd.
        return value if value is not None and abs(value - expected) < 0.01 else None

    seconds = wait_for(
        settled, lambda v: v is not None, timeout=STEP_TIMEOUT, what=f"downtime {expected:.3f}s in Prometheus"
    )
    assert seconds is not None
    availability = promql(astack, ratio)
    assert availability is not None
    assert availability == pytest.approx(1.0 - expected / DAY, abs=1e-7)
    # The same figure computed by PromQL from the counter: what a dashboard or alert rule can do.
    computed = promql(astack, f"1 - {downtime} / 86400")
    assert computed == pytest.approx(availability, abs=1e-7)
    budget = promql(astack, f'itsmd_service_error_budget_remaining_ratio{{service="{SERVICE}",window="1d"}}')
    objective = promql(astack, f'itsmd_service_availability_objective_ratio{{service="{SERVICE}"}}')
    assert objective is not None and budget is not None
    # The budget is small (86.4 s a day at 99.9 %), so compare with the exact downtime Prometheus holds, not
    # the millisecond API times.
    assert budget == pytest.approx(1.0 - seconds / ((1.0 - objective) * DAY), abs=1e-9)
    print(f"outage {expected:.3f}s -> availability(1d) {availability:.9f}, error budget left {budget:.6f}")


DASHBOARD = Path(__file__).parents[2] / "integrations" / "grafana" / "itsmd-dashboard.json"
EMPTY_WITHOUT_DRILLS = {
    "itsmd_drill_last_success_timestamp_seconds",
    "itsmd_drill_never_passed",
    "itsmd_drill_recovery_seconds",
    "itsmd_drill_rto_seconds",
    "itsmd_drills_total",
    "itsmd_runbook_runs_total",
    "itsmd_runbook_breaker_open",
}
"""Drill and runbook series exist per declared drill and loaded runbook; this stack declares none."""
EMPTY_WITHOUT_EVENTS = {"histogram_quantile", "MTTA", "MTTR", "failure rate"}
"""Ratios and quantiles of counters that have not moved are NaN or empty in PromQL, as in Grafana."""


def test_every_dashboard_query_answers_from_the_real_prometheus(astack: AvailabilityStack) -> None:
    """What Grafana would ask, with its variables filled in, against Prometheus scraping the real itsmd."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {"$service": ".*", "$window": "1d", "$__range": "10m", "$__rate_interval": "15s"}
    wait_for(
        lambda: promql(astack, "itsmd_build_info"),
        lambda v: v is not None,
        timeout=STEP_TIMEOUT,
        what="itsmd scraped by Prometheus",
    )
    answered = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            answer = get_json(f"{astack.prom_url}/api/v1/query?query={urllib.parse.quote(expr)}")
            assert answer["status"] == "success", (panel["title"], expr, answer)
            result = answer["data"]["result"]
            optional = any(m in expr for m in EMPTY_WITHOUT_DRILLS) or any(
                m in expr or m in panel["title"] for m in EMPTY_WITHOUT_EVENTS
            )
            assert result or optional, f"panel {panel['title']!r} shows nothing: {expr}"
            shown = ", ".join(f"{r['metric']}={r['value'][1]}" for r in result[:3])
            print(f"{panel['title']}: {len(result)} series {shown}")
            answered += 1
    assert answered >= 20
