"""The engine over a real store: steps, retries, timeouts, verify, rollback, approvals, policies."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook


def _steps_of(h: Harness, run_id: int) -> list[tuple[str, str, str, int]]:
    return [
        (name, phase, status, attempts)
        for name, phase, status, attempts in h.stored(
            "SELECT name, phase, status, attempts FROM run_steps WHERE run_id = ? ORDER BY idx", run_id
        )
    ]


async def test_steps_run_in_order_and_are_journaled(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: two-steps
        params:
          host: {{pattern: '^[a-z0-9.-]+$'}}
        steps:
          - name: first
            exec: {{argv: [sh, -c, 'echo "first $1" >> {out}', sh, "{{{{ params.host }}}}"]}}
          - name: second
            exec: {{argv: [sh, -c, 'echo second >> {out}']}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("two-steps", {"host": "web-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED, run.reason
    assert out.read_text() == "first web-1\nsecond\n"
    assert _steps_of(harness, run.id) == [("first", "do", "succeeded", 1), ("second", "do", "succeeded", 1)]
    stored = harness.stored("SELECT status, params, reason FROM runs WHERE id = ?", run.id)
    assert stored == [("succeeded", json.dumps({"host": "web-1"}), "all steps succeeded")]
    assert run.steps[0].output_digest and run.steps[0].plan["argv"][-1] == "web-1"
