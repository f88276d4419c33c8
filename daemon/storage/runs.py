"""The run journal (tables runs, run_steps): the rows the engine writes through the group-commit writer, and
loading them back at start-up (active runs with their steps, recent history, circuit-breaker counts) and for
reads of runs that have left the engine's memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from daemon.runbook.model import ACTIVE, Approval, Run, RunMode, RunStatus, StepRecord, StepStatus
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql

_RUN_NAMES = (
    "id",
    "runbook",
    "version",
    "mode",
    "status",
    "params",
    "trigger",
    "requested_by",
    "incident_id",
    "service",
    "emergency",
    "created_at",
    "started_at",
    "ended_at",
    "reason",
    "lock_key",
    "breaker_key",
    "lock_scope",
    "approval",
)
_STEP_NAMES = (
    "run_id",
    "idx",
    "step_index",
    "name",
    "phase",
    "status",
    "attempts",
    "started_at",
    "ended_at",
    "summary",
    "output_digest",
    "output",
    "plan",
    "data",
    "started",
)
RUN_COLUMNS = ", ".join(_RUN_NAMES)
STEP_COLUMNS = ", ".join(_STEP_NAMES)


def _upsert(table: str, names: tuple[str, ...], key: tuple[str, ...]) -> str:
    """A full-state upsert: every column but the key takes the new row's value."""
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in key)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({','.join('?' * len(names))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


# Column lists and placeholders are module constants; values are always bound.
UPSERT_RUN = Statement(_upsert("runs", _RUN_NAMES, ("id",)), order=30)
UPSERT_STEP = Statement(_upsert("run_steps", _STEP_NAMES, ("run_id", "idx")), order=31)


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


def _run_from_row(r: Row) -> Run:
    return Run(
        id=r["id"],
        runbook=r["runbook"],
        version=r["version"],
        mode=RunMode(r["mode"]),
        status=RunStatus(r["status"]),
        params=json.loads(r["params"]),
        trigger=r["trigger"],
        requested_by=r["requested_by"],
        incident_id=r["incident_id"],
        service=r["service"],
        emergency=bool(r["emergency"]),
        created_at=r["created_at"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        reason=r["reason"],
        lock_key=r["lock_key"],
        breaker_key=r["breaker_key"],
        lock_scope=r["lock_scope"],
        approval=Approval.from_json(json.loads(r["approval"])) if r["approval"] is not None else None,
    )


def _step_from_row(r: Row) -> StepRecord:
    return StepRecord(
        index=r["idx"],
        step_index=r["step_index"],
        name=r["name"],
        phase=r["phase"],
        status=StepStatus(r["status"]),
        attempts=r["attempts"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        summary=r["summary"],
        output_digest=r["output_digest"],
        output=r["output"],
        plan=json.loads(r["plan"]),
        data=json.loads(r["data"]),
        started=bool(r["started"]),
    )


def load_run(sql: Sql, run_id: int) -> Run | None:
    """One stored run with its steps, for reads of runs that have left the engine's memory."""
    row = sql.one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    if row is None:
        return None
    run = _run_from_row(row)
    run.steps.extend(
        _step_from_row(r)
        for r in sql.rows(f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY idx", (run_id,))
    )
    return run


@dataclass
class RunsSnapshot:
    runs: list[Run] = field(default_factory=list)
    """Active and held runs, then the most recent finished ones, each with its steps."""
    breaker_hits: list[tuple[str, str, float]] = field(default_factory=list)
    """(runbook, breaker key, created_at) of admitted live runs within the lookback."""
    next_id: int = 1


def load_runs(sql: Sql, *, now: float, breaker_lookback: float, history: int) -> RunsSnapshot:
    """Read what the engine needs at start (run it in a thread before the writer starts)."""
    keep = tuple(s.value for s in (*ACTIVE, RunStatus.HELD))
    marks = ",".join("?" * len(keep))
    rows = sql.rows(f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({marks}) ORDER BY id", keep)
    rows += sql.rows(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE status NOT IN ({marks}) ORDER BY id DESC LIMIT ?",
        (*keep, history),
    )[::-1]
    runs = [_run_from_row(r) for r in rows]
    by_id = {run.id: run for run in runs}
    if by_id:
        ids = ",".join("?" * len(by_id))
        for r in sql.rows(
            f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id IN ({ids}) ORDER BY run_id, idx",
            list(by_id),
        ):
            by_id[r["run_id"]].steps.append(_step_from_row(r))
    hits = sql.rows(
        "SELECT runbook, breaker_key, created_at FROM runs WHERE breaker_key IS NOT NULL AND mode = ? "
        "AND status != ? AND created_at > ? ORDER BY created_at",
        (RunMode.LIVE.value, RunStatus.SKIPPED.value, now - breaker_lookback),
    )
    max_id = sql.scalar("SELECT coalesce(max(id), 0) AS max_id FROM runs")
    return RunsSnapshot(runs, [(h["runbook"], h["breaker_key"], h["created_at"]) for h in hits], int(max_id) + 1)
