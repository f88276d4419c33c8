"""The audit_events table: the insert the log appends through, the API's read, and the reads the hash chain
is started and checked with (daemon/audit holds the chain; only its SQL is here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from daemon.storage.database import Statement
from daemon.storage.sql import Dialect, Row, Sql
from daemon.storage.timestamps import rfc3339

INSERT = Statement(
    "INSERT INTO audit_events (seq, at, actor, record_type, record_id, action, before, after, mac) "
    "VALUES (?,?,?,?,?,?,?,?,?)",
    order=100,
)
EVENT_COLUMNS = "id, seq, at, actor, record_type, record_id, action, before, after, mac"
UNCHAINED_COLUMNS = ("id", "at", "actor", "record_type", "record_id", "action", "before", "after")
"""The columns of an event written before the chain, in the order the chain's start seals them."""
TRIGGERS = {
    "audit_events_append_only_update": "CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON "
    "audit_events BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "audit_events_append_only_delete": "CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON "
    "audit_events WHEN NOT EXISTS (SELECT 1 FROM audit_cuts c WHERE OLD.id <= c.through_id) "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
}
"""The append-only triggers as SQLite schema version 10 leaves them (whitespace aside): nothing may change an
event, and only events up to an archive cut (audit_cuts, itself append-only) may be deleted."""
_PG_RAISE = "AS $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$"
_PG_ARCHIVED = (
    "AS $$ BEGIN IF NOT EXISTS (SELECT 1 FROM audit_cuts c WHERE OLD.id <= c.through_id) THEN "
    "RAISE EXCEPTION 'audit events are append-only'; END IF; RETURN OLD; END $$"
)
PG_TRIGGERS = {
    f"audit_events_append_only_{event}": f"CREATE TRIGGER audit_events_append_only_{event} BEFORE {event.upper()} "
    f"ON audit_events FOR EACH {each} EXECUTE FUNCTION {function}() {body}"
    for event, each, function, body in (
        ("update", "ROW", "audit_events_append_only", _PG_RAISE),
        ("delete", "ROW", "audit_events_delete_archived", _PG_ARCHIVED),
        ("truncate", "STATEMENT", "audit_events_append_only", _PG_RAISE),
    )
}
"""The append-only triggers as PostgreSQL schema version 2 leaves them, as trigger_sql shows them: each with
the body of the function it calls, since replacing the function disarms a trigger as surely as dropping it.
TRUNCATE has a trigger of its own: it would empty the table without firing the row triggers. A row may be
deleted only when an archive cut covers it, as in SQLite."""
_PAGE = 1000
"""Chained events read per query while checking: a whole chain is never held in memory."""


def read_events(
    sql: Sql, record_type: str | None, record_id: str | None, limit: int, offset: int
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
    rows = sql.rows(
        f"SELECT id, at, actor, record_type, record_id, action, before, after FROM audit_events {clause} "
        "ORDER BY id LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [
        {
            "id": r["id"],
            "at": rfc3339(r["at"]),
            "actor": r["actor"],
            "record_type": r["record_type"],
            "record_id": r["record_id"],
            "action": r["action"],
            "before": json.loads(r["before"]) if r["before"] is not None else None,
            "after": json.loads(r["after"]) if r["after"] is not None else None,
        }
        for r in rows
    ]


def newest_chained(sql: Sql) -> Row | None:
    """seq and mac of the chained event of the highest sequence number, or None before the chain started."""
    return sql.one("SELECT seq, mac FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")


def last_unchained_id(sql: Sql) -> int | None:
    """The id of the newest event written without a sequence number (before the chain), if any."""
    found = sql.scalar("SELECT max(id) AS last_id FROM audit_events WHERE seq IS NULL")
    return None if found is None else int(found)


def unchained(sql: Sql, through_id: int) -> list[Row]:
    """The events without a sequence number up to id `through_id`, oldest first (UNCHAINED_COLUMNS)."""
    return sql.rows(
        f"SELECT {', '.join(UNCHAINED_COLUMNS)} FROM audit_events WHERE seq IS NULL AND id <= ? ORDER BY id",
        (through_id,),
    )


def unchained_ids_after(sql: Sql, after_id: int) -> list[int]:
    """Ids of events without a sequence number written after id `after_id`."""
    rows = sql.rows("SELECT id FROM audit_events WHERE seq IS NULL AND id > ? ORDER BY id", (after_id,))
    return [r["id"] for r in rows]


def chained(sql: Sql, from_seq: int) -> Iterator[Row]:
    """Chained events (EVENT_COLUMNS) from sequence number `from_seq`, in chain order (seq, then id), read a
    page at a time."""
    rows = sql.rows(
        f"SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq >= ? ORDER BY seq, id LIMIT ?", (from_seq, _PAGE)
    )
    while rows:
        yield from rows
        if len(rows) < _PAGE:
            return
        seq, last_id = rows[-1]["seq"], rows[-1]["id"]
        rows = sql.rows(
            f"SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > ? OR (seq = ? AND id > ?) ORDER BY seq, id LIMIT ?",
            (seq, seq, last_id, _PAGE),
        )


def event_count(sql: Sql) -> int:
    return int(sql.scalar("SELECT count(*) AS events FROM audit_events"))


def chain_start(sql: Sql) -> Row | None:
    """The event of sequence number 1: id, record_type, record_id, action, after."""
    return sql.one("SELECT id, record_type, record_id, action, after FROM audit_events WHERE seq = 1")


def event_of_seq(sql: Sql, seq: int) -> Row | None:
    """The (first) event of a sequence number: id, mac."""
    return sql.one("SELECT id, mac FROM audit_events WHERE seq = ? ORDER BY id LIMIT 1", (seq,))


def has_chain(sql: Sql) -> bool:
    """Whether audit_events has the chain's columns (SQLite since the chain's migration; always in PostgreSQL)."""
    if sql.dialect is Dialect.SQLITE:
        return any(r["name"] == "mac" for r in sql.rows("PRAGMA table_info(audit_events)"))
    found = sql.scalar(
        "SELECT count(*) AS found FROM information_schema.columns "
        "WHERE table_name = 'audit_events' AND column_name = 'mac' AND table_schema = current_schema()"
    )
    return bool(found)


def schema_version(sql: Sql) -> int | None:
    """SQLite's user_version; None in PostgreSQL (its schema always has the chain)."""
    if sql.dialect is Dialect.SQLITE:
        return int(sql.scalar("PRAGMA user_version"))
    return None


def expected_triggers(dialect: Dialect) -> dict[str, str]:
    """The append-only triggers a store must have, by name, SQL with whitespace collapsed."""
    return dict(TRIGGERS) if dialect is Dialect.SQLITE else dict(PG_TRIGGERS)


def trigger_sql(sql: Sql, table: str = "audit_events") -> dict[str, str]:
    """The triggers on a table (audit_events, audit_cuts), by name, their SQL with whitespace collapsed.
    PostgreSQL: the table unqualified, then the body of the trigger's function, and ` DISABLED` when the
    trigger does not fire (ALTER TABLE ... DISABLE TRIGGER, or enabled for replication sessions only)."""
    if sql.dialect is Dialect.SQLITE:
        rows = sql.rows("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,))
    else:
        rows = sql.rows(
            "SELECT t.tgname AS name, replace(pg_get_triggerdef(t.oid), ' ON ' || quote_ident(n.nspname) || '.', "
            "' ON ') || ' AS $$ ' || p.prosrc || ' $$' "
            "|| CASE WHEN t.tgenabled IN ('O', 'A') THEN '' ELSE ' DISABLED' END AS sql "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE t.tgrelid = to_regclass(?) AND NOT t.tgisinternal",
            (table,),
        )
    return {r["name"]: " ".join((r["sql"] or "").split()) for r in rows}


@contextmanager
def snapshot(sql: Sql) -> Iterator[None]:
    """One read transaction for the block, so a check sees one state of the table while the daemon writes.
    PostgreSQL: assumes the reader is in autocommit mode (as psycopg's readers are made)."""
    begin = "BEGIN" if sql.dialect is Dialect.SQLITE else "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
    sql.rows(begin)
    try:
        yield
    finally:
        sql.rows("COMMIT")
