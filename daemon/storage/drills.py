"""Drill-run rows (migration 5, table drill_runs): the statement the runner writes with, loading its state at
start, and the read the service report uses. Rows are only ever written by daemon/drills/runner.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.drills.model import DrillOutcome, DrillRun
from daemon.report.model import DrillResult
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql

COLUMNS = (
    "id, drill, service, trigger, requested_by, outcome, reason, run_id, started_at, ended_at, recovery_seconds, "
    "rto_seconds, rpo_seconds, data_loss_seconds"
)
UPSERT = Statement(
    f"INSERT INTO drill_runs ({COLUMNS}) VALUES ({','.join('?' * len(COLUMNS.split(',')))}) "
    "ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason, run_id = excluded.run_id, "
    "ended_at = excluded.ended_at, recovery_seconds = excluded.recovery_seconds, "
    "data_loss_seconds = excluded.data_loss_seconds",
    order=50,
)


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


def _drill_run(r: Row) -> DrillRun:
    return DrillRun(
        id=r["id"],
        drill=r["drill"],
        service=r["service"],
        trigger=r["trigger"],
        requested_by=r["requested_by"],
        outcome=DrillOutcome(r["outcome"]),
        reason=r["reason"],
        started_at=r["started_at"],
        rto_seconds=r["rto_seconds"],
        rpo_seconds=r["rpo_seconds"],
        run_id=r["run_id"],
        ended_at=r["ended_at"],
        recovery_seconds=r["recovery_seconds"],
        data_loss_seconds=r["data_loss_seconds"],
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


def load_drill_state(sql: Sql) -> DrillState:
    state = DrillState()
    state.next_id = int(sql.scalar("SELECT COALESCE(MAX(id), 0) AS max_id FROM drill_runs")) + 1
    newest = sql.rows(f"SELECT {COLUMNS} FROM drill_runs WHERE id IN (SELECT MAX(id) FROM drill_runs GROUP BY drill)")
    for row in newest:
        run = _drill_run(row)
        state.last[run.drill] = run
    for r in sql.rows(
        "SELECT service, MAX(ended_at) AS ended_at FROM drill_runs WHERE outcome = 'passed' GROUP BY service"
    ):
        state.last_success[r["service"]] = float(r["ended_at"])
    measured = sql.rows(
        "SELECT service, recovery_seconds FROM drill_runs WHERE id IN "
        "(SELECT MAX(id) FROM drill_runs WHERE recovery_seconds IS NOT NULL GROUP BY service)"
    )
    for r in measured:
        state.last_recovery[r["service"]] = float(r["recovery_seconds"])
    running = sql.rows(f"SELECT {COLUMNS} FROM drill_runs WHERE outcome = 'running' ORDER BY id")
    state.interrupted = [_drill_run(row) for row in running]
    return state


def drill_results(sql: Sql, start: float, end: float) -> dict[str, list[DrillResult]]:
    """Drill runs started in [start, end) that ended, by service, oldest first (for the service report)."""
    out: dict[str, list[DrillResult]] = {}
    rows = sql.rows(
        "SELECT service, drill, started_at, outcome, recovery_seconds, rto_seconds FROM drill_runs "
        "WHERE started_at >= ? AND started_at < ? AND outcome != 'running' ORDER BY started_at, id",
        (start, end),
    )
    for r in rows:
        out.setdefault(r["service"], []).append(
            DrillResult(r["drill"], r["started_at"], r["outcome"], r["recovery_seconds"], r["rto_seconds"])
        )
    return out
