"""The prune statements of housekeeping, one kind of record each, in small batches; and freeing the space.

Every delete is a `Statement` the housekeeping job appends to a `Batch`, so it goes through the one writer
(SQLite keeps a single writing connection) and commits with whatever else that batch holds. A kind's
statements share one condition: the children (timeline, steps, links) are deleted first, selected through
the same `... ORDER BY id LIMIT ?` subquery as the parent row deleted last, so in one transaction they pick
the same rows and no child outlives its parent. Portable SQL: `?` placeholders, no rowid, no SQLite-only
functions; the dialects differ only in how space is given back (free_space).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.storage.database import Statement
from daemon.storage.sql import Backend, Dialect, Sql

log = logging.getLogger(__name__)

_RESOLVED_ALERTS = (
    "SELECT a.fingerprint FROM alerts a WHERE a.status IN ('resolved', 'expired') "
    "AND coalesce(a.ends_at, a.last_seen) < ? AND NOT EXISTS (SELECT 1 FROM incident_alerts ia "
    "JOIN incidents i ON i.id = ia.incident_id WHERE ia.fingerprint = a.fingerprint "
    "AND (i.status <> 'closed' OR i.resolved_at IS NULL OR i.resolved_at >= ?)) LIMIT ?"
)
"""Resolved or expired alerts ended before the cut that no incident still needs: one open, inside its reopen
window (not closed yet), or not yet rolled up (resolved after the second parameter: the opener's labels
decide whether its time was downtime). No ORDER BY: any batch of them will do, and sorting every resolved
alert for each batch made a batch cost as much as the whole table (bench/housekeeping.py)."""
_CLOSED_INCIDENTS = "SELECT id FROM incidents WHERE status = 'closed' AND resolved_at < ? ORDER BY id LIMIT ?"
_RESOLVED_PROBLEMS = "SELECT id FROM problems WHERE status = 'resolved' AND updated_at < ? ORDER BY id LIMIT ?"
_ENDED_CHANGES = (
    "SELECT id FROM changes WHERE outcome IS NOT NULL AND coalesce(ended_at, created_at) < ? ORDER BY id LIMIT ?"
)
_TERMINAL_RUNS = (
    "SELECT id FROM runs WHERE status IN ('succeeded', 'failed', 'rolled_back', 'rollback_failed', 'aborted', "
    "'rejected', 'cancelled', 'skipped') AND coalesce(ended_at, created_at) < ? ORDER BY id LIMIT ?"
)
_ENDED_DRILLS = (
    "SELECT id FROM drill_runs WHERE outcome <> 'running' AND coalesce(ended_at, started_at) < ? ORDER BY id LIMIT ?"
)
_SETTLED_OUTBOX = (
    "SELECT event_id, receiver FROM outbox WHERE state IN ('delivered', 'dead') AND updated_at < ? "
    "ORDER BY event_id, receiver LIMIT ?"
)


@dataclass(frozen=True)
class Kind:
    """One kind of record housekeeping prunes: how to find a batch of it, and what deletes that batch."""

    name: str
    """The `record` label of itsmd_housekeeping_deleted_total and the key in `retention:`."""
    select: str
    """The candidates, oldest first; parameters: the cut(s), then the batch size."""
    deletes: tuple[Statement, ...]
    """Children first; each takes the same parameters as `select`."""


def _by_id(table: str, column: str, select: str) -> str:
    return f"DELETE FROM {table} WHERE {column} IN ({select})"


ALERTS = Kind("alerts", _RESOLVED_ALERTS, (Statement(_by_id("alerts", "fingerprint", _RESOLVED_ALERTS), order=900),))
INCIDENTS = Kind(
    "incidents",
    _CLOSED_INCIDENTS,
    (
        Statement(_by_id("timeline", "incident_id", _CLOSED_INCIDENTS), order=901),
        Statement(_by_id("incident_alerts", "incident_id", _CLOSED_INCIDENTS), order=902),
        Statement(_by_id("problem_incidents", "incident_id", _CLOSED_INCIDENTS), order=903),
        Statement(_by_id("change_incidents", "incident_id", _CLOSED_INCIDENTS), order=904),
        Statement(_by_id("incidents", "id", _CLOSED_INCIDENTS), order=905),
    ),
)
PROBLEMS = Kind(
    "problems",
    _RESOLVED_PROBLEMS,
    (
        Statement(_by_id("problem_incidents", "problem_id", _RESOLVED_PROBLEMS), order=910),
        Statement(_by_id("problems", "id", _RESOLVED_PROBLEMS), order=911),
    ),
)
CHANGES = Kind(
    "changes",
    _ENDED_CHANGES,
    (
        Statement(_by_id("change_events", "change_id", _ENDED_CHANGES), order=920),
        Statement(_by_id("change_incidents", "change_id", _ENDED_CHANGES), order=921),
        Statement(_by_id("changes", "id", _ENDED_CHANGES), order=922),
    ),
)
RUNS = Kind(
    "runs",
    _TERMINAL_RUNS,
    (
        Statement(_by_id("run_steps", "run_id", _TERMINAL_RUNS), order=930),
        Statement(_by_id("runs", "id", _TERMINAL_RUNS), order=931),
    ),
)
DRILLS = Kind("drills", _ENDED_DRILLS, (Statement(_by_id("drill_runs", "id", _ENDED_DRILLS), order=940),))
OUTBOX = Kind(
    "outbox",
    _SETTLED_OUTBOX,
    (Statement(f"DELETE FROM outbox WHERE (event_id, receiver) IN ({_SETTLED_OUTBOX})", order=950),),
)

KINDS = (ALERTS, INCIDENTS, PROBLEMS, CHANGES, RUNS, DRILLS, OUTBOX)
"""Alerts first: an incident pruned in the same run no longer protects its alerts only from the next run on."""
PRUNED_TABLES = (
    "alerts",
    "timeline",
    "incident_alerts",
    "incidents",
    "problem_incidents",
    "problems",
    "change_events",
    "change_incidents",
    "changes",
    "run_steps",
    "runs",
    "drill_runs",
    "outbox",
)
VACUUMED_TABLES = (*PRUNED_TABLES, "audit_events", "counters", "availability_daily", "rollup_marks")
"""PostgreSQL: the pruned tables, and those whose rows are deleted (an audit archive) or rewritten in place
(counters, rollups: an update leaves the old row version behind) - without a VACUUM their space is never
reused and the database grows although the rows kept level off (the soak test on PostgreSQL showed it)."""


def candidates(sql: Sql, kind: Kind, params: Sequence[Any]) -> int:
    """How many rows the next delete of `kind` with these parameters removes (read before it is written)."""
    return int(sql.scalar(f"SELECT count(*) FROM ({kind.select}) AS c", params) or 0)


def enable_incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Make the SQLite file give pages back on `PRAGMA incremental_vacuum` (call outside a transaction).

    auto_vacuum can only change by rebuilding the file, so a store made before this version is VACUUMed
    once, at the first start of this version, before anything is served (it takes about as long as copying
    the file; a new store is empty, so it costs nothing there). True when it changed something."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return False
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        log.info("switching the store to incremental vacuum: a one-time VACUUM of the whole file")
    # Even an empty file needs it once its header is written (journal_mode = WAL writes it).
    conn.execute("VACUUM")
    return True


def free_space(backend: Backend, *, pages: int) -> int:
    """Give freed space back to the file system; off the writer's connection, like a checkpoint. SQLite:
    up to `pages` free pages per call (each step is a short write); PostgreSQL: a plain VACUUM of the tables
    that churn (VACUUMED_TABLES: marks their dead rows reusable; needs a connection outside a transaction).
    Returns the SQLite pages still free afterwards (0 on PostgreSQL)."""
    sql = backend.reader(read_only=False)
    try:
        if backend.dialect is Dialect.SQLITE:
            sql.rows(f"PRAGMA incremental_vacuum({int(pages)})")
            return int(sql.scalar("PRAGMA freelist_count") or 0)
        for table in VACUUMED_TABLES:
            sql.rows(f"VACUUM {table}")
        return 0
    finally:
        sql.close()


def database_bytes(sql: Sql) -> int | None:
    """Size of the store (SQLite: pages in use and free, times the page size; PostgreSQL: the database)."""
    if sql.dialect is Dialect.SQLITE:
        return int(sql.scalar("PRAGMA page_count") or 0) * int(sql.scalar("PRAGMA page_size") or 0)
    size = sql.scalar("SELECT pg_database_size(current_database())")
    return int(size) if size is not None else None
