"""After a crash or a shutdown mid-step: resume idempotent steps, otherwise roll back or hold by policy.
No run stays running. Real SQLite store, the run tasks cancelled with the writer stopped first (a crash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.clock import ManualClock
from daemon.runbook.engine import RUNS_TOTAL
from daemon.runbook.model import RunMode, RunStatus, StepStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook


def _runbook(folder: Path, log: Path, *, idempotent: bool, on_interrupt: str) -> Path:
    return write_runbook(
        folder,
        f"""
        name: interrupted
        on_interrupt: {on_interrupt}
        concurrency: {{key: the-target}}
        steps:
          - name: first
            exec: {{argv: [sh, -c, 'echo first >> {log}']}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-first >> {log}']}}}}
          - name: second
            idempotent: {str(idempotent).lower()}
            timeout: 1d
            sleep: {{duration: 1h}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-second >> {log}']}}}}
          - name: third
            exec: {{argv: [sh, -c, 'echo third >> {log}']}}
        """,
    )


async def _crash_mid_second(tmp_path: Path, rb: Path, clock: ManualClock) -> int:
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.start("interrupted", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await h.until_sleeping(1)  # "second" is journaled as running and durable before its side effect starts
    stored = h.stored("SELECT name, status FROM run_steps WHERE run_id = ? ORDER BY idx", run.id)
    assert stored == [("first", "succeeded"), ("second", "running")]
    await h.crash()
    return run.id


@pytest.mark.parametrize("on_interrupt", ["hold", "rollback", "resume"])
async def test_an_idempotent_step_is_resumed_whatever_the_policy(tmp_path: Path, on_interrupt: str) -> None:
    log = tmp_path / "log"
    rb = _runbook(tmp_path / "rb", log, idempotent=True, on_interrupt=on_interrupt)
    clock = ManualClock()
    run_id = await _crash_mid_second(tmp_path, rb, clock)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.get(run_id)
    assert run is not None and run.status is RunStatus.RUNNING
    assert engine.locks() == {("interrupted", "the-target"): run_id}
    await h.until_sleeping(1)  # "second" runs again
    h.sleeper.advance(3600)
    finished = await h.until(run)
    assert finished.status is RunStatus.SUCCEEDED
    assert log.read_text().split() == ["first", "third"]  # "first" completed before the crash: not repeated
    assert [(s.name, s.status) for s in run.steps] == [
        ("first", StepStatus.SUCCEEDED),
        ("second", StepStatus.INTERRUPTED),
        ("second", StepStatus.SUCCEEDED),
        ("third", StepStatus.SUCCEEDED),
    ]
    await h.stop()


async def test_a_non_idempotent_step_is_held_and_keeps_its_lock(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = _runbook(tmp_path / "rb", log, idempotent=False, on_interrupt="hold")
    clock = ManualClock()
    run_id = await _crash_mid_second(tmp_path, rb, clock)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.get(run_id)
    assert run is not None and run.status is RunStatus.HELD
    assert run.reason.startswith("interrupted by a restart during step second, which is not idempotent; held")
    assert h.stored("SELECT status FROM runs WHERE id = ?", run_id) == [("held",)]
    assert engine.locks() == {
        ("interrupted", "the-target"): run_id
    }  # the target's state is unknown: nobody else touches it
    blocked = engine.start("interrupted", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await h.until(blocked, RunStatus.WAITING_LOCK)
    assert engine.cancel(run_id, "ann", "checked by hand").status is RunStatus.CANCELLED
    await h.until(blocked, RunStatus.RUNNING)
    # Counted once, when it really ended: held is a wait for a human, not an outcome.
    mine = (("mode", "live"), ("runbook", "interrupted"))
    assert h.counters.get(RUNS_TOTAL, tuple(sorted((*mine, ("outcome", "held"))))) == 0
    assert h.counters.get(RUNS_TOTAL, tuple(sorted((*mine, ("outcome", "cancelled"))))) == 1
    await h.stop()
    assert log.read_text().split() == ["first", "first"]


async def test_a_non_idempotent_step_is_rolled_back_by_policy(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = _runbook(tmp_path / "rb", log, idempotent=False, on_interrupt="rollback")
    clock = ManualClock()
    run_id = await _crash_mid_second(tmp_path, rb, clock)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.get(run_id)
    assert run is not None
    await h.until(run)
    assert run.status is RunStatus.ROLLED_BACK
    assert "interrupted by a restart during step second" in run.reason
    # "second" was in flight: its outcome is unknown, so its rollback runs too, before the earlier one's.
    assert log.read_text().split() == ["first", "undo-second", "undo-first"]
    assert engine.locks() == {}
    assert h.stored("SELECT status FROM runs WHERE status IN ('running', 'rolling_back')") == []
    await h.stop()


async def test_a_changed_runbook_is_not_resumed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = _runbook(tmp_path / "rb", log, idempotent=True, on_interrupt="resume")
    clock = ManualClock()
    run_id = await _crash_mid_second(tmp_path, rb, clock)
    rb.write_text(rb.read_text().replace("echo third", "echo THIRD"))
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.get(run_id)
    assert run is not None and run.status is RunStatus.HELD
    assert "runbook interrupted changed since the run started" in run.reason
    await h.stop()


async def test_shutdown_interrupts_and_the_next_start_recovers(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = _runbook(tmp_path / "rb", log, idempotent=False, on_interrupt="hold")
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    run = engine.start("interrupted", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await h.until_sleeping(1)
    await h.stop(engine_deadline=0.05)
    h2 = Harness(tmp_path / "store", clock)
    assert h2.db.path.exists()
    engine2 = await h2.start([rb])
    stored = engine2.get(run.id)
    assert stored is not None and stored.status is RunStatus.HELD
    assert [s.status for s in stored.steps] == [StepStatus.SUCCEEDED, StepStatus.INTERRUPTED]
    await h2.stop()


async def test_after_a_restart_the_lock_goes_to_the_run_that_held_it(tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: approved-first
        approval: {required: true, timeout: 1d}
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
    waiting = engine.start("approved-first", {}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    holder = engine.start("approved-first", {}, mode=RunMode.LIVE, trigger="manual", requested_by="b")
    await h.until(holder, RunStatus.WAITING_APPROVAL)
    engine.approve(holder.id, "lead", "go")
    await h.until(holder, RunStatus.RUNNING)
    await h.until_sleeping(2)  # the other run's approval timeout and the work step
    assert engine.locks() == {("approved-first", "target"): holder.id}
    await h.crash()

    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    assert engine.locks() == {
        ("approved-first", "target"): holder.id
    }  # not the lower-numbered run still waiting for approval
    again = engine.get(waiting.id)
    assert again is not None
    await h.until(again, RunStatus.WAITING_APPROVAL)
    await h.stop()
