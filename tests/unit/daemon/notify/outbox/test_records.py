"""Runs, approvals, problems and drills as webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from daemon.drills.model import DrillOutcome, DrillRun
from daemon.model import Problem, ProblemStatus
from daemon.notify.outbox.records import DrillNotices, ProblemNotices
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.ingest.conftest import eventually, running
from tests.unit.daemon.notify.outbox.harness import SECRET, SECRET_ENV, Harness, receiver
from tests.unit.daemon.notify.outbox.receiver_server import Receiver

RUNBOOK = """
    name: careful
    approval: {required: true, timeout: 1h, allow_self_approval: true}  # the open API has one caller
    steps:
      - name: noop
        exec: {argv: ["true"]}
    """


async def test_a_run_tells_its_approval_asked_and_decided_and_its_end(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    extra = f"notify:\n  webhooks:\n    - name: hook\n      url: {hook.url}\n      secret: {{env: {SECRET_ENV}}}\n"
    config = write_setup(tmp_path / "etc", {"careful": RUNBOOK}, extra)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        status, run = await call(d, "POST", "/api/v1/runs", {"runbook": "careful", "reason": "test"})
        assert status in (200, 201, 202), run
        await until(d, run["id"], "waiting_approval")
        await eventually(lambda: _got(hook, 1))
        status, _ = await call(d, "POST", f"/api/v1/runs/{run['id']}/approve", {"reason": "fine"})
        assert status == 200
        await until(d, run["id"])
        await eventually(lambda: _got(hook, 3))
    bodies = [json.loads(g.body) for g in hook.got]
    assert [b["kind"] for b in bodies] == ["approval_requested", "approval_decided", "run_ended"]
    assert bodies[1]["approval"]["decision"] == "approved"
    assert bodies[2]["run"]["status"] == "succeeded" and bodies[2]["run"]["id"] == run["id"]


async def _got(hook: Receiver, n: int) -> bool:
    return len(hook.got) >= n


async def test_problem_opened_and_known_error_are_told_other_moves_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch)])
    try:
        notices = ProblemNotices(h.outbox)
        problem = Problem(1, "sig", "api", "Recurring: x", ProblemStatus.CANDIDATE, 1.0, 1.0, incidents=[4, 5])
        notices.on_problem("opened", problem, 10.0)
        notices.on_problem("confirm", problem, 11.0)
        problem.status, problem.root_cause, problem.workaround = ProblemStatus.KNOWN_ERROR, "disk", "clean"
        notices.on_problem("known_error", problem, 12.0)
        await h.writer.flush()
        rows = h.rows()
        assert [r[2] for r in rows] == ["problem_opened", "problem_known_error"]
        body = json.loads(h.outbox.due("hook", 20.0)[1].body)
        assert body["service"] == "api" and body["problem"]["workaround"] == "clean"
        assert body["problem"]["incidents"] == [4, 5]
    finally:
        h.close()


async def test_a_drill_that_ended_is_told_with_its_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, services=["db"])])
    try:
        drill = DrillRun(7, "failover", "db", "schedule", "scheduler", DrillOutcome.PASSED, "", 100.0, 60.0)
        drill.ended_at, drill.recovery_seconds = 150.0, 42.0
        DrillNotices(h.outbox).on_drill_ended(drill)
        await h.writer.flush()
        [d] = h.outbox.due("hook", 200.0)
        body = json.loads(d.body)
        assert body["kind"] == "drill_ended" and body["at"] == 150.0
        assert body["drill"]["outcome"] == "passed" and body["drill"]["recovery_seconds"] == 42.0
    finally:
        h.close()
