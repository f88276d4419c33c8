"""A continuity drill on a short schedule against the test target: the runbook takes the target down and up
through its control endpoint, recovery is measured by polling the real Prometheus for `up == 1`, and the result
shows in the drills API and, through Prometheus scraping itsmd's /metrics, in Prometheus itself.

The schedule is `@every 10s`: cron cannot fire more often than once a minute, which would make this test wait
up to a minute for its first run.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .client import get_json, wait_for
from .stack import FLAP_SERVICE, HOST, RECUR_SERVICE, SERVICE, Stack, module_stack

pytestmark = pytest.mark.e2e
DRILL_JOB = "drill"
DRILL_SERVICE = "drill-api"
RESULT_TIMEOUT = 90.0
SWITCH = (
    "import json, sys, urllib.request\n"
    "body = json.dumps({'down': sys.argv[2] == 'down', 'name': sys.argv[3]}).encode()\n"
    "headers = {'Content-Type': 'application/json'}\n"
    "req = urllib.request.Request(sys.argv[1], data=body, method='POST', headers=headers)\n"
    "urllib.request.urlopen(req, timeout=5).read()\n"
)


def runbook(control: str) -> dict[str, Any]:
    def switch(state: str) -> dict[str, Any]:
        return {"exec": {"argv": [sys.executable, "-c", SWITCH, control, state, DRILL_JOB]}}

    return {
        "name": "target-failover",
        "description": "take the drill target down, wait, bring it back",
        "trigger": {"on": ["drill"]},
        "on_failure": "rollback",
        "steps": [
            {"name": "stop-target", **switch("down"), "rollback": switch("up")},
            {"name": "outage", "sleep": {"duration": "3s"}},
            {"name": "start-target", **switch("up"), "idempotent": True},
        ],
    }


class DrillStack(Stack):
    def write_configs(self) -> None:
        super().write_configs()
        prometheus = yaml.safe_load((self.etc / "prometheus.yml").read_text())
        prometheus["scrape_configs"] += [
            {
                "job_name": DRILL_JOB,
                "metrics_path": f"/metrics/{DRILL_JOB}",
                "static_configs": [{"targets": [f"{HOST}:{self.target_port}"], "labels": {"service": DRILL_SERVICE}}],
            },
            {"job_name": "itsmd", "static_configs": [{"targets": [f"{HOST}:{self.itsmd_port}"]}]},
        ]
        (self.etc / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
        config = yaml.safe_load(self.itsmd_config.read_text())
        config["runbooks"] = {"dir": "runbooks"}
        config["prometheus"] = {"url": self.prom_url}
        self.itsmd_config.write_text(yaml.safe_dump(config))
        folder = self.itsmd_dir / "runbooks"
        folder.mkdir(exist_ok=True)
        (folder / "target-failover.yaml").write_text(yaml.safe_dump(runbook(f"{self.target_url}/_control")))

    def write_rules(self, services: object = None) -> None:
        names = (SERVICE, FLAP_SERVICE, RECUR_SERVICE, DRILL_SERVICE)
        super().write_rules(services or {"services": [{"name": n, "tier": "high"} for n in names]})
        drills = {
            "drills": [
                {
                    "name": "target-failover",
                    "service": DRILL_SERVICE,
                    "runbook": "target-failover",
                    "schedule": "@every 10s",
                    "rto": "30s",
                    "recovery": {"promql": f'up{{job="{DRILL_JOB}"}} == 1', "interval": "500ms"},
                }
            ]
        }
        (self.itsmd_dir / "rules" / "drills.yaml").write_text(yaml.safe_dump(drills))


@pytest.fixture(scope="module")
def dstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillStack]:
    yield from module_stack(DrillStack, tmp_path_factory.mktemp("e2e-drills"))


def prometheus_value(stack: Stack, query: str) -> float | None:
    answer = get_json(f"{stack.prom_url}/api/v1/query?query={urllib.parse.quote(query)}")
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_scheduled_drill_result_in_api_and_prometheus(dstack: DrillStack) -> None:
    drill = get_json(f"{dstack.itsmd_url}/api/v1/drills/target-failover")
    assert drill["schedule"] == "@every 10s" and drill["rto_seconds"] == 30.0 and drill["next_run"] is not None

    def passed() -> dict[str, Any]:
        dstack.itsmd.check_alive()
        found: dict[str, Any] = get_json(f"{dstack.itsmd_url}/api/v1/drills/target-failover")
        return found

    shown = wait_for(
        passed,
        lambda d: d["last"] is not None and d["last"]["outcome"] == "passed",
        timeout=RESULT_TIMEOUT,
        what="a scheduled drill run that passed",
        describe=dstack.itsmd.tail,
    )
    last = shown["last"]
    assert last["trigger"] == "schedule" and last["requested_by"] == "scheduler"
    recovery = last["recovery_seconds"]
    # The runbook keeps the target down for 3 s; recovery is seen at the first scrape after it is back.
    assert 3.0 <= recovery <= 30.0, last
    print(f"drill recovery measured: {recovery:.2f}s (RTO 30s): {last['reason']}")
    run = get_json(f"{dstack.itsmd_url}/api/v1/runs/{last['run_id']}")
    assert run["mode"] == "drill" and run["status"] == "succeeded"

    passed_total = wait_for(
        lambda: prometheus_value(dstack, f'itsmd_drills_total{{service="{DRILL_SERVICE}",outcome="passed"}}'),
        lambda v: v is not None and v >= 1,
        timeout=30.0,
        what="itsmd_drills_total in Prometheus",
    )
    assert passed_total is not None and passed_total >= 1
    in_prometheus = prometheus_value(dstack, f'itsmd_drill_recovery_seconds{{service="{DRILL_SERVICE}"}}')
    assert in_prometheus is not None and 3.0 <= in_prometheus <= 30.0
    assert prometheus_value(dstack, f'itsmd_drill_rto_seconds{{service="{DRILL_SERVICE}"}}') == 30.0
    success = prometheus_value(dstack, f'itsmd_drill_last_success_timestamp_seconds{{service="{DRILL_SERVICE}"}}')
    assert success is not None and success > 0
