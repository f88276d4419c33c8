"""The run journal in SQLite: the rows the engine writes through the group-commit writer, and loading
them back at start-up (active runs with their steps, recent history, circuit-breaker counts)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from daemon.runbook.model import ACTIVE, Approval, Run, RunMode, RunStatus, StepRecord, StepStatus
from daemon.storage.database import Statement

RUN_COLUMNS = (
    "id, runbook, version, mode, status, params, trigger, requested_by, incident_id, service, emergency, "
    "created_at, started_at, ended_at, reason, lock_key, breaker_key, lock_scope, approval"
)
STEP_COLUMNS = (
    "run_id, idx, step_index, name, phase, status, attempts, started_at, ended_at, summary, output_digest, "
    "output, plan, data, started"
)
# Column lists and placeholders are module constants; values are always bound.
UPSERT_RUN = Statement(f"INSERT OR REPLACE INTO runs ({RUN_COLUMNS}) VALUES ({','.join('?' * 19)})", order=30)  # noqa: S608
UPSERT_STEP = Statement(
    f"INSERT OR REPLACE INTO run_steps ({STEP_COLUMNS}) VALUES ({','.join('?' * 15)})",  # noqa: S608
    order=31,
)


def run_row(run: Run) -> tuple[Any, ...]:
    return (
        run.id,
        run.runbook,
        run.version,
        run.mode.value,
        run.status.value,
        json.dumps(run.params, sort_keys=True),
        run.trigger,
        run.requested_by,
        run.incident_id,
        run.service,
        int(run.emergency),
        run.created_at,
        run.started_at,
        run.ended_at,
        run.reason,
        run.lock_key,
        run.breaker_key,
        run.lock_scope,
        json.dumps(run.approval.as_json(), sort_keys=True) if run.approval is not None else None,
    )


def step_row(run_id: int, rec: StepRecord) -> tuple[Any, ...]:
    return (
        run_id,
        rec.index,
        rec.step_index,
        rec.name,
        rec.phase,
        rec.status.value,
        rec.attempts,
        rec.started_at,
        rec.ended_at,
        rec.summary,
        rec.output_digest,
        rec.output,
        json.dumps(rec.plan, sort_keys=True, default=str),
        json.dumps(rec.data, sort_keys=True, default=str),
        int(rec.started),
    )


def _run_from_row(r: tuple[Any, ...]) -> Run:
    return Run(
        id=r[0],
        runbook=r[1],
        version=r[2],
        mode=RunMode(r[3]),
        status=RunStatus(r[4]),
        params=json.loads(r[5]),
        trigger=r[6],
        requested_by=r[7],
        incident_id=r[8],
        service=r[9],
        emergency=bool(r[10]),
        created_at=r[11],
        started_at=r[12],
        ended_at=r[13],
        reason=r[14],
        lock_key=r[15],
        breaker_key=r[16],
        lock_scope=r[17],
        approval=Approval.from_json(json.loads(r[18])) if r[18] is not None else None,
    )


def _step_from_row(r: tuple[Any, ...]) -> StepRecord:
    return StepRecord(
        index=r[1],
        step_index=r[2],
        name=r[3],
        phase=r[4],
        status=StepStatus(r[5]),
        attempts=r[6],
        started_at=r[7],
        ended_at=r[8],
        summary=r[9],
        output_digest=r[10],
        output=r[11],
        plan=json.loads(r[12]),
        data=json.loads(r[13]),
        started=bool(r[14]),
    )


def load_run(conn: sqlite3.Connection, run_id: int) -> Run | None:
    """One stored run with its steps, for reads of runs that have left the engine's memory."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()  # noqa: S608
    if row is None:
        return None
    run = _run_from_row(row)
    run.steps.extend(
        _step_from_row(r)
        for r in conn.execute(f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY idx", (run_id,))  # noqa: S608
    )
    return run


@dataclass
class RunsSnapshot:
    runs: list[Run] = field(default_factory=list)
    """Active and held runs, then the most recent finished ones, each with its steps."""
    breaker_hits: list[tuple[str, str, float]] = field(default_factory=list)
    """(runbook, breaker key, created_at) of admitted live runs within the lookback."""
    next_id: int = 1


def load_runs(conn: sqlite3.Connection, *, now: float, breaker_lookback: float, history: int) -> RunsSnapshot:
    """Read what the engine needs at start (run it in a thread before the writer starts)."""
    keep = tuple(s.value for s in (*ACTIVE, RunStatus.HELD))
    marks = ",".join("?" * len(keep))
    rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({marks}) ORDER BY id", keep).fetchall()  # noqa: S608
    rows += conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE status NOT IN ({marks}) ORDER BY id DESC LIMIT ?",  # noqa: S608
        (*keep, history),
    ).fetchall()[::-1]
    runs = [_run_from_row(r) for r in rows]
    by_id = {run.id: run for run in runs}
    if by_id:
        ids = ",".join("?" * len(by_id))
        for r in conn.execute(
            f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id IN ({ids}) ORDER BY run_id, idx",  # noqa: S608
            list(by_id),
        ):
            by_id[r[0]].steps.append(_step_from_row(r))
    hits = conn.execute(
        "SELECT runbook, breaker_key, created_at FROM runs WHERE breaker_key IS NOT NULL AND mode = ? "
        "AND status != ? AND created_at > ? ORDER BY created_at",
        (RunMode.LIVE.value, RunStatus.SKIPPED.value, now - breaker_lookback),
    ).fetchall()
    max_id = conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
    return RunsSnapshot(runs, [(a, b, c) for a, b, c in hits], max_id + 1)
