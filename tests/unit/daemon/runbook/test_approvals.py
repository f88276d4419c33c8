"""Approvals are evidence: who decided, why and when is kept on the run and in the audit trail; the run-level
message is rendered like every template; an approval's timeout counts from its request, across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.clock import ManualClock
from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook


def _gated(folder: Path, marker: Path) -> Path:
    return write_runbook(
        folder,
        f"""
        name: gated
        params:
          host: {{pattern: '^[a-z0-9-]+$'}}
        approval: {{required: true, who: [ann], timeout: 1h, message: 'ok to run {{{{ params.host }}}}?'}}
        steps:
          - name: act
            exec: {{argv: [touch, {marker}]}}
        """,
    )


def _audit(h: Harness, run_id: int) -> list[tuple[str, str, dict[str, object]]]:
    rows = h.stored(
        "SELECT actor, action, after FROM audit_events WHERE record_type = 'run' AND record_id = ?", str(run_id)
    )
    return [(actor, action, json.loads(after)) for actor, action, after in rows]


async def test_the_run_level_approval_is_rendered_and_its_decision_kept(harness: Harness, tmp_path: Path) -> None:
    engine = await harness.start([_gated(tmp_path / "rb", tmp_path / "ran")])
    run = engine.start("gated", {"host": "web-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await harness.until(run, RunStatus.WAITING_APPROVAL)
    assert run.reason == "ok to run web-1? (approval by ann, within 1h)"
    asked_at = harness.clock.now()
    harness.clock.advance(90)
    engine.approve(run.id, "ann", "checked the dashboard")
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED
    assert run.approval is not None
    assert (run.approval.message, run.approval.decision, run.approval.by, run.approval.reason) == (
        "ok to run web-1?",
        "approved",
        "ann",
        "checked the dashboard",
    )
    assert (run.approval.requested_at, run.approval.decided_at) == (asked_at, asked_at + 90)
    (stored,) = harness.stored("SELECT approval FROM runs WHERE id = ?", run.id)[0]
    assert json.loads(stored)["by"] == "ann" and json.loads(stored)["decided_at"] == asked_at + 90
    assert _audit(harness, run.id) == [("ann", "approved", {"approval": "approved", "reason": "checked the dashboard"})]
    plan = engine.plan("gated", {"host": "web-2"})
    assert plan["approval"]["message"] == "ok to run web-2?"


async def test_an_approval_timeout_counts_from_the_request_across_a_restart(tmp_path: Path) -> None:
    rb = _gated(tmp_path / "rb", tmp_path / "ran")
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.start("gated", {"host": "web-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await h.until(run, RunStatus.WAITING_APPROVAL)
    await h.crash()

    clock.advance(40 * 60)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    again = engine.get(run.id)
    assert again is not None
    await h.until(again, RunStatus.WAITING_APPROVAL)
    assert again.reason == "ok to run web-1? (approval by ann, within 20m)"  # not a fresh hour
    await h.until_sleeping(1)
    h.sleeper.advance(20 * 60)
    await h.until(again)
    assert (again.status, again.reason) == (RunStatus.REJECTED, "no approval within 1h")
    assert not (tmp_path / "ran").exists()
    assert _audit(h, run.id) == [
        (
            "itsmd",
            "approval_timed_out",
            {"approval": "approval_timed_out", "reason": "no decision in time"},
        )
    ]
    await h.stop()


async def test_an_approval_that_ran_out_while_the_daemon_was_down_is_rejected_at_recovery(tmp_path: Path) -> None:
    rb = _gated(tmp_path / "rb", tmp_path / "ran")
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.start("gated", {"host": "web-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await h.until(run, RunStatus.WAITING_APPROVAL)
    await h.crash()

    clock.advance(2 * 3600)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    again = engine.get(run.id)
    assert again is not None
    assert (again.status, again.reason) == (RunStatus.REJECTED, "no approval within 1h")  # decided by recover()
    assert again.approval is not None and again.approval.decision == "timed_out"
    assert h.stored("SELECT status FROM runs WHERE id = ?", run.id) == [("rejected",)]
    await h.stop()


async def test_an_approval_step_rerun_after_a_restart_keeps_its_first_deadline(tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: step-gated
        steps:
          - name: ask
            approval: {who: [ann], timeout: 30m, message: 'go on?'}
        """,
    )
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.start("step-gated", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await h.until(run, RunStatus.WAITING_APPROVAL)
    await h.crash()

    clock.advance(20 * 60)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    again = engine.get(run.id)
    assert again is not None
    await h.until(again, RunStatus.WAITING_APPROVAL)
    assert again.reason == "go on? (approval by ann, within 10m)"
    engine.reject(again.id, "ann", "not today")
    await h.until(again)
    assert again.status is RunStatus.REJECTED
    assert _audit(h, run.id) == [("ann", "rejected", {"approval": "rejected", "reason": "not today", "step": "ask"})]
    await h.stop()


async def test_an_approval_given_before_a_restart_stands(tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: queued
        approval: {required: true, timeout: 1h}
        concurrency: {key: target}
        steps:
          - name: work
            idempotent: true
            timeout: 1d
            sleep: {duration: 1h}
        """,
    )
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    holder = engine.start("queued", {}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await h.until(holder, RunStatus.WAITING_APPROVAL)
    engine.approve(holder.id, "lead", "go")
    await h.until(holder, RunStatus.RUNNING)
    queued = engine.start("queued", {}, mode=RunMode.LIVE, trigger="manual", requested_by="b")
    await h.until(queued, RunStatus.WAITING_APPROVAL)
    engine.approve(queued.id, "lead", "after the first")
    await h.until(queued, RunStatus.WAITING_LOCK)
    await h.crash()

    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    again = engine.get(queued.id)
    assert again is not None
    await h.until(again, RunStatus.WAITING_LOCK)  # not asked again: the journaled approval is the evidence
    assert again.approval is not None and (again.approval.by, again.approval.reason) == ("lead", "after the first")
    assert [action for _, action, _ in _audit(h, queued.id)] == ["approved"]
    await h.stop()
