"""The audit trail (ISO/IEC 20000-1 7.5, 8.7.3): an append-only record of every change to an incident or
problem, and of every approval decision on a runbook run (record type `run`): who, when, what, and the
record's fields before and after.

Rows are only ever inserted, in the same transaction as the change they describe; the table refuses
UPDATE and DELETE (triggers), and nothing prunes it. The incident timeline is the readable story; this is
the record an auditor checks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.storage.database import Batch, Statement
from daemon.storage.queries import rfc3339
from daemon.storage.writer import GroupCommitWriter

INSERT = Statement(
    "INSERT INTO audit_events (at, actor, record_type, record_id, action, before, after) VALUES (?,?,?,?,?,?,?)",
    order=100,
)
SYSTEM = "itsmd"
"""The actor of changes the daemon makes by itself (alerts, timers)."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: float
    actor: str
    record_type: str
    record_id: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


def _dump(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class AuditLog:
    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self._pending: list[AuditEvent] = []
        self.recorded = 0
        writer.add_collector(self._collect)

    def record(
        self,
        at: float,
        actor: str,
        record_type: str,
        record_id: int | str,
        action: str,
        *,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        """Record a change; only the fields that differ are kept in before/after (all of them on creation)."""
        if before is not None and after is not None:
            changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
            before = {k: before.get(k) for k in changed}
            after = {k: after.get(k) for k in changed}
        self._pending.append(AuditEvent(at, actor, record_type, str(record_id), action, before, after))
        self.recorded += 1
        self._writer.changed()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for e in self._pending:
            batch.append(INSERT, (e.at, e.actor, e.record_type, e.record_id, e.action, _dump(e.before), _dump(e.after)))
        self._pending.clear()


def read_events(
    conn: sqlite3.Connection, record_type: str | None, record_id: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Audit events, oldest first (the order they happened in)."""
    where, args = [], []
    if record_type is not None:
        where.append("record_type = ?")
        args.append(record_type)
    if record_id is not None:
        where.append("record_id = ?")
        args.append(record_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT id, at, actor, record_type, record_id, action, before, after FROM audit_events {clause} "  # noqa: S608
        "ORDER BY id LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [
        {
            "id": r[0],
            "at": rfc3339(r[1]),
            "actor": r[2],
            "record_type": r[3],
            "record_id": r[4],
            "action": r[5],
            "before": json.loads(r[6]) if r[6] is not None else None,
            "after": json.loads(r[7]) if r[7] is not None else None,
        }
        for r in rows
    ]
