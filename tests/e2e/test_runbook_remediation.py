"""A real alert opens an incident, the incident triggers a runbook, the runbook's verify fails and its rollback
restores what the step changed. Real Prometheus and Alertmanager, itsmd as a child process, a runbook file on
disk; a stack of its own (the shared one has no runbooks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .client import get_json, wait_for
from .stack import ALERTNAME, SERVICE, Binaries, Stack, module_stack

pytestmark = pytest.mark.e2e
FIRE_TIMEOUT = 30.0
RUN_TIMEOUT = 30.0


def runbook(state: Path) -> str:
    return f"""
name: heal-target
description: switch the target's config, check it, and put it back if the check fails
trigger:
  "on": [incident_opened]
  service: [{SERVICE}]
  matchers: ['alertname="{ALERTNAME}"']
params:
  instance:
    pattern: '^[0-9.]+:[0-9]+$'
on_failure: rollback
steps:
  - name: switch-config
    exec:
      argv:
        - sh
        - -c
        - 'cp "$STATE" "$STATE.bak" && printf "switched for %s\\n" "$1" > "$STATE"'
        - sh
        - "{{{{ params.instance }}}}"
      env: {{STATE: "{state}"}}
    rollback:
      exec:
        argv: [sh, -c, 'mv "$STATE.bak" "$STATE"']
        env: {{STATE: "{state}"}}
verify:
  - name: target-healthy
    exec:
      argv: [sh, -c, 'grep -q healthy "$STATE"']
      env: {{STATE: "{state}"}}
"""


class RunbookStack(Stack):
    def __init__(self, root: Path, binaries: Binaries) -> None:
        super().__init__(root, binaries)
        self.state = root / "target-state.conf"

    def write_configs(self) -> None:
        super().write_configs()
        config = yaml.safe_load(self.itsmd_config.read_text())
        config["runbooks"] = {"dir": "runbooks", "change_suspect_window": "10m"}
        self.itsmd_config.write_text(yaml.safe_dump(config))
        folder = self.itsmd_dir / "runbooks"
        folder.mkdir(exist_ok=True)
        (folder / "heal-target.yaml").write_text(runbook(self.state))


@pytest.fixture(scope="module")
def rstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunbookStack]:
    yield from module_stack(RunbookStack, tmp_path_factory.mktemp("e2e-runbooks"))


def api(stack: Stack, path: str) -> Any:
    stack.itsmd.check_alive()
    return get_json(f"{stack.itsmd_url}{path}")


def test_alert_triggers_runbook_whose_failed_verify_rolls_back(rstack: RunbookStack) -> None:
    rstack.state.write_text("healthy: v1\n")
    rstack.set_target_down(True)
    runs = wait_for(
        lambda: api(rstack, "/api/v1/runs")["runs"],
        bool,
        timeout=FIRE_TIMEOUT,
        what="the TargetDown incident to trigger heal-target",
        describe=rstack.itsmd.tail,
    )
    (run,) = runs
    done = wait_for(
        lambda: api(rstack, f"/api/v1/runs/{run['id']}"),
        lambda r: r["status"] not in ("pending", "waiting_lock", "waiting_approval", "running", "rolling_back"),
        timeout=RUN_TIMEOUT,
        what="the run to end",
        describe=rstack.itsmd.tail,
    )
    rstack.set_target_down(False)

    assert done["status"] == "rolled_back", done
    assert rstack.state.read_text() == "healthy: v1\n"
    assert not Path(f"{rstack.state}.bak").exists()
    assert done["trigger"] == "incident_opened"
    assert done["params"]["instance"] == f"127.0.0.1:{rstack.target_port}"
    phases = [(s["name"], s["phase"], s["status"]) for s in done["steps"]]
    assert phases == [
        ("switch-config", "do", "succeeded"),
        ("target-healthy", "verify", "failed"),
        ("switch-config", "rollback", "succeeded"),
    ]

    incident = api(rstack, f"/api/v1/incidents/{done['incident_id']}")
    assert incident["service"] == SERVICE
    assert [e["kind"] for e in incident["timeline"]].count("runbook_started") == 1

    change = api(rstack, f"/api/v1/changes/{done['change_id']}")
    assert (change["type"], change["outcome"], change["service"], change["incident_id"]) == (
        "standard",
        "rolled_back",
        SERVICE,
        done["incident_id"],
    )
    assert [e["detail"].get("to") for e in change["events"] if e["kind"] == "status"][-1] == "rolled_back"
