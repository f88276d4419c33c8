"""The audit_cuts table and the archive's reads and writes of audit_events (daemon/audit/archive.py holds the
chain logic: what a cut is, its mac, the archive file; only the SQL is here).

A cut is recorded and the events it covers are deleted in one batch through the backend's write: the insert
only happens when no other cut was recorded since the archive read the store (its `after_id` is still the
newest cut's), and the delete trigger lets through only the rows a recorded cut covers. So an archive that
raced another one records nothing and deletes nothing; the caller reads the cuts back to know which it was.
"""

from __future__ import annotations

from daemon.storage.audit import EVENT_COLUMNS
from daemon.storage.database import Statement
from daemon.storage.sql import Dialect, Row, Sql, has_table

CUT_COLUMNS = ("through_seq", "through_mac", "through_id", "at", "events", "archive_sha256", "mac")

RECORD_CUT = Statement(
    f"INSERT INTO audit_cuts ({', '.join(CUT_COLUMNS)}) SELECT ?, ?, ?, ?, ?, ?, ? "
    "WHERE coalesce((SELECT max(through_id) FROM audit_cuts), 0) = ?",
    order=960,
)
"""Row: the cut's CUT_COLUMNS, then the `after_id` the archive started from (the newest cut's through_id, 0)."""
DELETE_ARCHIVED = Statement("DELETE FROM audit_events WHERE id > ? AND id <= ?", order=961)
"""Row: after_id, through_id."""

CUT_TRIGGERS = {
    "audit_cuts_append_only_update": "CREATE TRIGGER audit_cuts_append_only_update BEFORE UPDATE ON audit_cuts "
    "BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END",
    "audit_cuts_append_only_delete": "CREATE TRIGGER audit_cuts_append_only_delete BEFORE DELETE ON audit_cuts "
    "BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END",
}
"""The append-only triggers of audit_cuts as SQLite schema version 10 creates them (whitespace aside)."""
PG_CUT_TRIGGERS = {
    f"audit_cuts_append_only_{event}": f"CREATE TRIGGER audit_cuts_append_only_{event} BEFORE {event.upper()} "
    f"ON audit_cuts FOR EACH {each} EXECUTE FUNCTION audit_cuts_append_only() "
    "AS $$ BEGIN RAISE EXCEPTION 'audit cuts are append-only'; END $$"
    for event, each in (("update", "ROW"), ("delete", "ROW"), ("truncate", "STATEMENT"))
}
"""The same of PostgreSQL schema version 2, as daemon.storage.audit.trigger_sql shows them."""


def cuts(sql: Sql) -> list[Row]:
    """Recorded cuts (CUT_COLUMNS), oldest first; none on a store without the table (an older SQLite store)."""
    if not has_table(sql, "audit_cuts"):
        return []
    return sql.rows(f"SELECT {', '.join(CUT_COLUMNS)} FROM audit_cuts ORDER BY through_seq")


def newest_before(sql: Sql, before: float, *, below_seq: int, after_id: int) -> Row | None:
    """id, seq, mac of the newest chained event recorded before `before`, of a sequence number below
    `below_seq` and an id above `after_id` (after the newest cut)."""
    return sql.one(
        "SELECT id, seq, mac FROM audit_events WHERE seq IS NOT NULL AND at < ? AND seq < ? AND id > ? "
        "ORDER BY seq DESC LIMIT 1",
        (before, below_seq, after_id),
    )


def events_between(sql: Sql, after_id: int, through_id: int) -> list[Row]:
    """The events (EVENT_COLUMNS) of id in (after_id, through_id], chained or sealed, by id."""
    return sql.rows(
        f"SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > ? AND id <= ? ORDER BY id", (after_id, through_id)
    )


def expected_cut_triggers(dialect: Dialect) -> dict[str, str]:
    """The append-only triggers audit_cuts must have, by name, SQL with whitespace collapsed."""
    return dict(CUT_TRIGGERS) if dialect is Dialect.SQLITE else dict(PG_CUT_TRIGGERS)
