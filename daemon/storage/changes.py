"""Change records: the statements the ledger puts in write batches, loading at start, and reads for the API
and the console.

Tables (migration 4; `changes.approval` from migration 6): `changes` holds each change's current state (its
identity columns are written once and never updated), `change_events` the append-only audit trail of every
transition, `change_incidents` the incidents linked to a change as suspected effects. Nothing here is ever
deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daemon.changes.model import Change, ChangeOutcome, ChangeType
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql, row_json
from daemon.storage.timestamps import rfc3339

COLUMNS = (
    "id, run_id, runbook, runbook_version, mode, change_type, risk, service, incident_id, requested_by, "
    "trigger, run_status, outcome, reason, created_at, started_at, ended_at, approval"
)
UPSERT = Statement(
    f"INSERT INTO changes ({COLUMNS}) VALUES ({','.join('?' * len(COLUMNS.split(',')))}) "
    "ON CONFLICT (id) DO UPDATE SET run_status = excluded.run_status, outcome = excluded.outcome, "
    "reason = excluded.reason, started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "approval = excluded.approval",
    order=40,
)
EVENT = Statement("INSERT INTO change_events (change_id, at, kind, detail) VALUES (?,?,?,?)", order=41)
LINK = Statement(
    "INSERT INTO change_incidents (change_id, incident_id, at, reason) VALUES (?,?,?,?) "
    "ON CONFLICT (change_id, incident_id) DO NOTHING",
    order=42,
)
Json = dict[str, Any]


def change_row(c: Change) -> tuple[Any, ...]:
    return (
        c.id,
        c.run_id,
        c.runbook,
        c.runbook_version,
        c.mode,
        c.change_type.value,
        c.risk,
        c.service,
        c.incident_id,
        c.requested_by,
        c.trigger,
        c.run_status,
        c.outcome.value if c.outcome is not None else None,
        c.reason,
        c.created_at,
        c.started_at,
        c.ended_at,
        json.dumps(c.approval, sort_keys=True) if c.approval is not None else None,
    )


def change_from_row(r: Row) -> Change:
    return Change(
        id=r["id"],
        run_id=r["run_id"],
        runbook=r["runbook"],
        runbook_version=r["runbook_version"],
        mode=r["mode"],
        change_type=ChangeType(r["change_type"]),
        risk=r["risk"],
        service=r["service"],
        incident_id=r["incident_id"],
        requested_by=r["requested_by"],
        trigger=r["trigger"],
        run_status=r["run_status"],
        outcome=ChangeOutcome(r["outcome"]) if r["outcome"] is not None else None,
        reason=r["reason"],
        created_at=r["created_at"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        approval=json.loads(r["approval"]) if r["approval"] is not None else None,
    )


def event_row(change_id: int, at: float, kind: str, detail: Json) -> tuple[Any, ...]:
    return (change_id, at, kind, row_json(detail))


@dataclass
class ChangeSnapshot:
    changes: list[Change]
    """Open changes and those active within the suspect window: the ones an incident can still be linked to."""
    next_id: int


def load_changes(sql: Sql, *, now: float, window: float) -> ChangeSnapshot:
    """Called at start, before the writer runs."""
    since = now - window
    changes = {
        r["id"]: change_from_row(r)
        for r in sql.rows(
            f"SELECT {COLUMNS} FROM changes WHERE outcome IS NULL OR ended_at >= ? OR created_at >= ? ORDER BY id",
            (since, since),
        )
    }
    if changes:
        marks = ",".join("?" * len(changes))
        for r in sql.rows(
            f"SELECT change_id, incident_id FROM change_incidents WHERE change_id IN ({marks}) ORDER BY at",
            list(changes),
        ):
            changes[r["change_id"]].suspected_incidents.append(r["incident_id"])
    max_id = sql.scalar("SELECT coalesce(max(id), 0) AS max_id FROM changes")
    return ChangeSnapshot(list(changes.values()), int(max_id) + 1)


# -- reads for the API and console (a reader's Sql, committed state) -------------------------------------------


def change_json(c: Change) -> Json:
    return {
        "id": c.id,
        "run_id": c.run_id,
        "runbook": c.runbook,
        "runbook_version": c.runbook_version,
        "mode": c.mode,
        "type": c.change_type.value,
        "risk": c.risk,
        "service": c.service,
        "incident_id": c.incident_id,
        "requested_by": c.requested_by,
        "trigger": c.trigger,
        "run_status": c.run_status,
        "outcome": c.outcome.value if c.outcome is not None else None,
        "reason": c.reason,
        "created_at": rfc3339(c.created_at),
        "started_at": rfc3339(c.started_at),
        "ended_at": rfc3339(c.ended_at),
        "approval": _approval_json(c.approval),
    }


def _approval_json(a: Json | None) -> Json | None:
    if a is None:
        return None
    out = {"decision": a.get("decision"), "by": a.get("by"), "reason": a.get("reason"), "at": rfc3339(a.get("at"))}
    if a.get("on_behalf_of"):
        out["on_behalf_of"] = a["on_behalf_of"]
    return out


def list_changes(
    sql: Sql, *, service: str | None, outcome: str | None, state: str, limit: int, offset: int
) -> list[Json]:
    """state: all, open (no outcome yet) or closed."""
    where: list[str] = []
    args: list[Any] = []
    if service is not None:
        where.append("service = ?")
        args.append(service)
    if outcome is not None:
        where.append("outcome = ?")
        args.append(outcome)
    if state == "open":
        where.append("outcome IS NULL")
    elif state == "closed":
        where.append("outcome IS NOT NULL")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = sql.rows(f"SELECT {COLUMNS} FROM changes {clause} ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])
    return [change_json(change_from_row(r)) for r in rows]


def get_change(sql: Sql, change_id: int) -> Json | None:
    r = sql.one(f"SELECT {COLUMNS} FROM changes WHERE id = ?", (change_id,))
    if r is None:
        return None
    out = change_json(change_from_row(r))
    out["suspected_incidents"] = [
        {"incident_id": s["incident_id"], "at": rfc3339(s["at"]), "reason": s["reason"]}
        for s in sql.rows(
            "SELECT incident_id, at, reason FROM change_incidents WHERE change_id = ? ORDER BY at, incident_id",
            (change_id,),
        )
    ]
    out["events"] = [
        {"at": rfc3339(e["at"]), "kind": e["kind"], "detail": json.loads(e["detail"])}
        for e in sql.rows("SELECT at, kind, detail FROM change_events WHERE change_id = ? ORDER BY id", (change_id,))
    ]
    return out
