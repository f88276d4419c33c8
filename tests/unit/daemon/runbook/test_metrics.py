"""Runbook and change metrics on /metrics of the real app: pre-initialised, counted, kept across a restart."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.ingest.conftest import running, series

RUNBOOKS = {
    "ok": """
        name: ok
        steps:
          - name: one
            exec: {argv: ["true"]}
          - name: two
            exec: {argv: ["true"]}
        """,
    "breaks": """
        name: breaks
        limits: {max_runs: 1, window: 1h}
        steps:
          - name: one
            exec: {argv: ["false"]}
        """,
}


async def test_runbook_metrics_count_and_survive_a_restart(tmp_path: Path) -> None:
    config = write_setup(tmp_path / "etc", RUNBOOKS)
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        before = await d.metrics()
        for runbook in ("ok", "breaks"):
            for outcome in ("succeeded", "failed", "rolled_back", "held"):
                assert before[series("itsmd_runbook_runs_total", runbook=runbook, mode="live", outcome=outcome)] == 0
            assert before[series("itsmd_runbook_breaker_open", runbook=runbook)] == 0
        assert before[series("itsmd_runbook_step_duration_seconds_count", action="exec")] == 0

        _, run = await call(d, "POST", "/api/v1/runs", {"runbook": "ok", "service": "api"})
        assert (await until(d, run["id"]))["status"] == "succeeded"
        _, failing = await call(d, "POST", "/api/v1/runs", {"runbook": "breaks"})
        failed = (await until(d, failing["id"]))["status"]
        assert failed in ("failed", "rolled_back")
        _, second = await call(d, "POST", "/api/v1/runs", {"runbook": "breaks"})
        skipped = await until(d, second["id"])

        after = await d.metrics()
        assert after[series("itsmd_runbook_runs_total", runbook="ok", mode="live", outcome="succeeded")] == 1
        assert after[series("itsmd_runbook_step_duration_seconds_count", action="exec")] == 3
        assert after[series("itsmd_runbook_step_duration_seconds_bucket", action="exec", le="+Inf")] == 3
        assert after[series("itsmd_changes_total", service="api", change_type="standard", outcome="successful")] == 1
        outcome = {"failed": "failed", "rolled_back": "rolled_back"}[failed]
        assert after[series("itsmd_changes_total", service="none", change_type="standard", outcome=outcome)] == 1
        assert skipped["status"] == "skipped", skipped["reason"]
        assert after[series("itsmd_runbook_breaker_open", runbook="breaks")] == 1
        assert after[series("itsmd_runbook_breaker_open", runbook="ok")] == 0

    async with running(config, tmp_path / "data", clock) as d:
        again = await d.metrics()
        assert again[series("itsmd_runbook_runs_total", runbook="ok", mode="live", outcome="succeeded")] == 1
        assert again[series("itsmd_runbook_step_duration_seconds_count", action="exec")] == 3
        assert again[series("itsmd_changes_total", service="api", change_type="standard", outcome="successful")] == 1
