"""The audit_events table: the insert the log appends through, the API's read, and the chain's reads."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from daemon.audit.chain import Head
from daemon.storage.database import Statement
from daemon.storage.queries import rfc3339

INSERT = Statement(
    "INSERT INTO audit_events (seq, at, actor, record_type, record_id, action, before, after, mac) "
    "VALUES (?,?,?,?,?,?,?,?,?)",
    order=100,
)
EVENT_COLUMNS = "id, seq, at, actor, record_type, record_id, action, before, after, mac"
CHAIN_STARTED = ("audit", "chain", "chain_started")
"""record_type, record_id and action of the first event of every chain (sequence number 1)."""
TRIGGERS = {
    "audit_events_append_only_update": "CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON "
    "audit_events BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "audit_events_append_only_delete": "CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON "
    "audit_events WHEN NOT EXISTS (SELECT 1 FROM audit_cuts c WHERE OLD.id <= c.through_id) "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
}
"""The append-only triggers as schema version 10 leaves them (whitespace aside): nothing may change an event,
and only events up to an archive cut (audit_cuts, itself append-only) may be deleted."""
CUT_TRIGGERS = {
    "audit_cuts_append_only_update": "CREATE TRIGGER audit_cuts_append_only_update BEFORE UPDATE ON audit_cuts "
    "BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END",
    "audit_cuts_append_only_delete": "CREATE TRIGGER audit_cuts_append_only_delete BEFORE DELETE ON audit_cuts "
    "BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END",
}


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


def stored_head(conn: sqlite3.Connection) -> Head | None:
    """The chained event of the highest sequence number, or None before the chain started."""
    r = conn.execute("SELECT seq, mac FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1").fetchone()
    return None if r is None else Head(r[0], r[1] or "")


def unchained_digest(conn: sqlite3.Connection, through_id: int | None) -> tuple[int, str]:
    """Count and SHA-256 of the events without a mac (written before the chain) up to id `through_id`."""
    digest = hashlib.sha256()
    count = 0
    if through_id is not None:
        for r in conn.execute(
            "SELECT id, at, actor, record_type, record_id, action, before, after FROM audit_events "
            "WHERE seq IS NULL AND id <= ? ORDER BY id",
            (through_id,),
        ):
            digest.update(json.dumps(list(r), separators=(",", ":")).encode() + b"\n")
            count += 1
    return count, digest.hexdigest()


def chained(conn: sqlite3.Connection, from_seq: int) -> Iterator[tuple[Any, ...]]:
    """Chained events (EVENT_COLUMNS) from sequence number `from_seq`, in chain order."""
    yield from conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq >= ? ORDER BY seq, id",  # noqa: S608
        (from_seq,),
    )


def trigger_sql(conn: sqlite3.Connection, table: str = "audit_events") -> dict[str, str]:
    """The triggers on a table (audit_events, audit_cuts), by name, their SQL with whitespace collapsed."""
    return {
        name: " ".join((sql or "").split())
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
        )
    }
