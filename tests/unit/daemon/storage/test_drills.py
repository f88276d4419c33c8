"""Drill runs round-trip through a backend: the runner's rows, its state at start and the report's read."""

from __future__ import annotations

from daemon.drills.model import DrillOutcome, DrillRun
from daemon.report.model import DrillResult
from daemon.storage.drills import UPSERT, drill_results, drill_row, load_drill_state
from daemon.storage.sql import Backend
from tests.unit.daemon.storage.backends_fixture import write


def _drill(
    run_id: int,
    drill: str,
    service: str,
    outcome: DrillOutcome,
    started: float,
    *,
    ended_at: float | None = None,
    recovery_seconds: float | None = None,
) -> DrillRun:
    return DrillRun(
        id=run_id,
        drill=drill,
        service=service,
        trigger="schedule",
        requested_by="itsmd",
        outcome=outcome,
        reason="",
        started_at=started,
        rto_seconds=300.0,
        ended_at=ended_at,
        recovery_seconds=recovery_seconds,
    )


def test_the_state_after_a_restart(sql_backend: Backend) -> None:
    runs = [
        _drill(1, "failover", "api", DrillOutcome.PASSED, 10.0, ended_at=20.0, recovery_seconds=5.0),
        _drill(2, "failover", "api", DrillOutcome.FAILED, 30.0, ended_at=40.0),
        _drill(3, "restore", "db", DrillOutcome.PASSED, 50.0, ended_at=60.0, recovery_seconds=7.0),
        _drill(4, "restore", "db", DrillOutcome.RUNNING, 70.0),
    ]
    write(sql_backend, *((UPSERT, drill_row(d)) for d in runs))
    state = load_drill_state(sql_backend.primary)
    assert state.next_id == 5
    assert state.last == {"failover": runs[1], "restore": runs[3]}
    assert state.last_success == {"api": 20.0, "db": 60.0}
    assert state.last_recovery == {"api": 5.0, "db": 7.0}
    assert state.interrupted == [runs[3]]


def test_an_ended_run_updates_its_row(sql_backend: Backend) -> None:
    run = _drill(1, "failover", "api", DrillOutcome.RUNNING, 10.0)
    write(sql_backend, (UPSERT, drill_row(run)))
    run.outcome, run.ended_at, run.recovery_seconds, run.run_id = DrillOutcome.PASSED, 20.0, 4.0, 9
    write(sql_backend, (UPSERT, drill_row(run)))
    assert load_drill_state(sql_backend.primary).last == {"failover": run}


def test_results_of_a_period_by_service_ended_ones_only(sql_backend: Backend) -> None:
    runs = [
        _drill(1, "failover", "api", DrillOutcome.PASSED, 10.0, ended_at=20.0, recovery_seconds=5.0),
        _drill(2, "failover", "api", DrillOutcome.RUNNING, 30.0),
        _drill(3, "restore", "db", DrillOutcome.FAILED, 50.0, ended_at=60.0),
        _drill(4, "restore", "db", DrillOutcome.FAILED, 99.0, ended_at=100.0),
    ]
    write(sql_backend, *((UPSERT, drill_row(d)) for d in runs))
    assert drill_results(sql_backend.primary, 10.0, 99.0) == {
        "api": [DrillResult("failover", 10.0, "passed", 5.0, 300.0)],
        "db": [DrillResult("restore", 50.0, "failed", None, 300.0)],
    }
    assert load_drill_state(sql_backend.primary).next_id == 5
