"""Drill-run rows (migration 5, table drill_runs): the statement the runner writes with, loading its state at
start, and the read the service report uses. Rows are only ever written by daemon/drills/runner.py."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from daemon.drills.model import DrillOutcome, DrillRun
from daemon.report.model import DrillResult
from daemon.storage.database import Statement

COLUMNS = (
    "id, drill, service, trigger, requested_by, outcome, reason, run_id, started_at, ended_at, recovery_seconds, "
    "rto_seconds, rpo_seconds, data_loss_seconds"
)
UPSERT = Statement(
    f"INSERT INTO drill_runs ({COLUMNS}) VALUES ({','.join('?' * len(COLUMNS.split(',')))}) "  # noqa: S608
    "ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason, run_id = excluded.run_id, "
    "ended_at = excluded.ended_at, recovery_seconds = excluded.recovery_seconds, "
    "data_loss_seconds = excluded.data_loss_seconds",
    order=50,
)
# S608: queries interpolate only COLUMNS and "?" marks; every value is bound as a parameter.


def drill_row(d: DrillRun) -> tuple[Any, ...]:
    return (
        d.id,
        d.drill,
        d.service,
        d.trigger,
        d.requested_by,
        d.outcome.value,
        d.reason,
        d.run_id,
        d.started_at,
        d.ended_at,
        d.recovery_seconds,
        d.rto_seconds,
        d.rpo_seconds,
        d.data_loss_seconds,
    )


def _drill_run(row: sqlite3.Row | tuple[Any, ...]) -> DrillRun:
    (id_, drill, service, trigger, by, outcome, reason, run_id, started, ended, recovery, rto, rpo, loss) = row
    return DrillRun(
        id=id_,
        drill=drill,
        service=service,
        trigger=trigger,
        requested_by=by,
        outcome=DrillOutcome(outcome),
        reason=reason,
        started_at=started,
        rto_seconds=rto,
        rpo_seconds=rpo,
        run_id=run_id,
        ended_at=ended,
        recovery_seconds=recovery,
        data_loss_seconds=loss,
    )


@dataclass
class DrillState:
    """What the runner needs after a restart."""

    next_id: int = 1
    last: dict[str, DrillRun] = field(default_factory=dict)
    """The newest run of each drill (by drill name)."""
    last_success: dict[str, float] = field(default_factory=dict)
    """Per service: when its latest passed drill ended."""
    last_recovery: dict[str, float] = field(default_factory=dict)
    """Per service: the latest measured recovery time."""
    interrupted: list[DrillRun] = field(default_factory=list)
    """Runs stored as running: the daemon stopped or died during them."""


def load_drill_state(conn: sqlite3.Connection) -> DrillState:
    state = DrillState()
    (max_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM drill_runs").fetchone()
    state.next_id = int(max_id) + 1
    newest = conn.execute(
        f"SELECT {COLUMNS} FROM drill_runs WHERE id IN (SELECT MAX(id) FROM drill_runs GROUP BY drill)"  # noqa: S608
    )
    for row in newest:
        run = _drill_run(row)
        state.last[run.drill] = run
    for service, at in conn.execute(
        "SELECT service, MAX(ended_at) FROM drill_runs WHERE outcome = 'passed' GROUP BY service"
    ):
        state.last_success[service] = float(at)
    measured = conn.execute(
        "SELECT service, recovery_seconds FROM drill_runs WHERE id IN "
        "(SELECT MAX(id) FROM drill_runs WHERE recovery_seconds IS NOT NULL GROUP BY service)"
    )
    for service, seconds in measured:
        state.last_recovery[service] = float(seconds)
    running = conn.execute(f"SELECT {COLUMNS} FROM drill_runs WHERE outcome = 'running' ORDER BY id")  # noqa: S608
    state.interrupted = [_drill_run(row) for row in running]
    return state


def drill_results(conn: sqlite3.Connection, start: float, end: float) -> dict[str, list[DrillResult]]:
    """Drill runs started in [start, end) that ended, by service, oldest first (for the service report)."""
    out: dict[str, list[DrillResult]] = {}
    rows = conn.execute(
        "SELECT service, drill, started_at, outcome, recovery_seconds, rto_seconds FROM drill_runs "
        "WHERE started_at >= ? AND started_at < ? AND outcome != 'running' ORDER BY started_at, id",
        (start, end),
    )
    for service, drill, at, outcome, recovery, rto in rows:
        out.setdefault(service, []).append(DrillResult(drill, at, outcome, recovery, rto))
    return out
