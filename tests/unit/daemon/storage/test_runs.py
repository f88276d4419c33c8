"""The run journal round-trips through a backend: rows written by the engine's statements read back by name."""

from __future__ import annotations

from daemon.runbook.model import Approval, Run, RunMode, RunStatus, StepRecord, StepStatus
from daemon.storage.runs import UPSERT_RUN, UPSERT_STEP, load_run, load_runs, run_row, step_row
from daemon.storage.sql import Backend
from tests.unit.daemon.storage.backends_fixture import write


def _run(run_id: int, status: RunStatus, *, created: float = 100.0, breaker: str | None = None) -> Run:
    return Run(
        id=run_id,
        runbook="restart",
        version="v1",
        mode=RunMode.LIVE,
        status=status,
        params={"host": "a"},
        trigger="api",
        requested_by="alice",
        incident_id=7,
        service="api",
        emergency=False,
        created_at=created,
        breaker_key=breaker,
    )


def _step(index: int, status: StepStatus) -> StepRecord:
    return StepRecord(
        index=index,
        name=f"step{index}",
        phase="do",
        status=status,
        attempts=1,
        started_at=101.0 + index,
        ended_at=None,
        summary="ok",
        output_digest="d",
        output="out",
        plan={"kind": "exec"},
        data={"silence": "x"},
        step_index=index,
    )


def test_a_run_and_its_steps_read_back_as_written(sql_backend: Backend) -> None:
    run = _run(1, RunStatus.WAITING_APPROVAL)
    run.approval = Approval(requested_at=100.0, message="ok?", who=("ops",), timeout=60.0)
    run.steps = [_step(0, StepStatus.SUCCEEDED), _step(1, StepStatus.RUNNING)]
    write(sql_backend, (UPSERT_RUN, run_row(run)), *((UPSERT_STEP, step_row(1, s)) for s in run.steps))
    sql = sql_backend.reader()
    try:
        assert load_run(sql, 1) == run
        assert load_run(sql, 2) is None
    finally:
        sql.close()


def test_a_newer_row_replaces_every_column_of_the_older(sql_backend: Backend) -> None:
    run = _run(1, RunStatus.RUNNING)
    step = _step(0, StepStatus.RUNNING)
    write(sql_backend, (UPSERT_RUN, run_row(run)), (UPSERT_STEP, step_row(1, step)))
    run.status, run.ended_at, run.reason, run.lock_key = RunStatus.FAILED, 120.0, "boom", None
    step.status, step.ended_at, step.output, step.data = StepStatus.FAILED, 119.0, "err", {}
    write(sql_backend, (UPSERT_RUN, run_row(run)), (UPSERT_STEP, step_row(1, step)))
    run.steps = [step]
    assert load_run(sql_backend.primary, 1) == run


def test_load_runs_keeps_active_runs_recent_history_and_breaker_hits(sql_backend: Backend) -> None:
    rows = [
        _run(1, RunStatus.SUCCEEDED, created=10.0, breaker="api"),
        _run(2, RunStatus.SUCCEEDED, created=20.0, breaker="api"),
        _run(3, RunStatus.HELD, created=30.0),
        _run(4, RunStatus.SKIPPED, created=40.0, breaker="api"),
        _run(5, RunStatus.RUNNING, created=50.0, breaker="api"),
        _run(6, RunStatus.FAILED, created=60.0),
    ]
    rows[4].steps = [_step(0, StepStatus.RUNNING)]
    write(sql_backend, *((UPSERT_RUN, run_row(r)) for r in rows), (UPSERT_STEP, step_row(5, rows[4].steps[0])))
    snapshot = load_runs(sql_backend.primary, now=70.0, breaker_lookback=55.0, history=2)
    # Active and held first (by id), then the newest `history` finished ones, oldest first.
    assert [r.id for r in snapshot.runs] == [3, 5, 4, 6]
    assert snapshot.runs[1].steps == rows[4].steps
    # Live runs with a breaker key created after now - lookback, skipped ones not counted.
    assert snapshot.breaker_hits == [("restart", "api", 20.0), ("restart", "api", 50.0)]
    assert snapshot.next_id == 7


def test_an_empty_journal_starts_at_run_one(sql_backend: Backend) -> None:
    snapshot = load_runs(sql_backend.primary, now=0.0, breaker_lookback=1.0, history=10)
    assert (snapshot.runs, snapshot.breaker_hits, snapshot.next_id) == ([], [], 1)
