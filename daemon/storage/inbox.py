"""The inbox table (PostgreSQL only): ingest bodies a follower accepted, waiting for the leader to apply them.

    follower:  insert(rows) + NOTIFY in one transaction  ->  2xx
    leader:    after(position) in (xact_id, seq) order, below the horizon  ->  pipeline  ->  position in the
               same writer batch as the alerts
               delete_through(committed position) later, in small batches

Why not seq order: seq is taken when a row is inserted, not when it commits. Follower C's transaction takes
seq 10, follower B's takes 11 and commits first; a leader reading "seq > cursor" then applies 11, moves its
cursor past 10, and never reads 10 once it commits (and deletes it as covered). So every row carries the id
of the transaction that inserted it (xact_id, a column default), and the leader reads only rows whose
xact_id is below the horizon (horizon()): the oldest transaction id in progress in this database, or the
next id to be handed out when none is. Every transaction below it has ended by the time the rows are read
(a later statement, a later snapshot), so its rows are all visible or never will be; every transaction of
this database that commits later has an id at or above it. The position (xact_id, seq) of the last row
applied therefore never passes a row that can still appear. The order respects the order of the requests:
a body acknowledged before another was received committed before that one's transaction began, so its
transaction id is lower.

The horizon looks at this database only (transactions in progress in the snapshot, kept when their id is
locked by a session of this database or by a prepared transaction), not at the whole cluster as
pg_snapshot_xmin() would: another database's long transaction must not stall the inbox. The price that
remains: a row waits while an older writing transaction of this database is open (normally milliseconds:
the followers' and the leader's own commits). Followers bound theirs with idle_in_transaction_session_timeout,
so a follower stopped mid-transaction holds the leader back only that long (its transaction is then rolled
back, and it was never acknowledged).

The table itself is created by the PostgreSQL schema migrations (version 1, xact_id added by version 2):
    inbox (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL,
           replica TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, principal TEXT, source TEXT,
           xact_id xid8 NOT NULL DEFAULT pg_current_xact_id())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

CHANNEL = "itsmd_inbox"
"""Followers notify it when rows commit; the leader listens on it (and polls, in case a notice is lost)."""

_INSERT = "INSERT INTO inbox (received_at, replica, kind, body, principal, source) VALUES (%s, %s, %s, %s, %s, %s)"
_NOTIFY = "SELECT pg_notify(%s, '')"
# The snapshot is the statement's, taken before pg_locks and pg_stat_activity are read: a transaction in
# progress in it that is not in pg_locks any more had ended before this statement did. Transaction ids in
# pg_locks are 32-bit, the snapshot's 64-bit (epoch in the high half).
_HORIZON = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
mine AS (
    SELECT l.transactionid::text::bigint AS xid32 FROM pg_locks l
    WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
      AND (l.pid IS NULL OR l.pid IN (
          SELECT a.pid FROM pg_stat_activity a
          WHERE a.datid IS NULL OR a.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())))
)
SELECT least(
    (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
     WHERE (x::text::numeric % 4294967296)::bigint IN (SELECT xid32 FROM mine)),
    (SELECT pg_snapshot_xmax(snap.s) FROM snap)
)::text AS horizon
"""
_AFTER = (
    "SELECT seq, xact_id::text AS xact, received_at, replica, kind, body, principal, source FROM inbox "
    "WHERE (xact_id, seq) > (%s::text::xid8, %s) AND xact_id < %s::text::xid8 "
    "ORDER BY xact_id, seq LIMIT %s"
)
_BACKLOG = (
    "SELECT count(*) AS pending, min(received_at) AS oldest FROM inbox WHERE (xact_id, seq) > (%s::text::xid8, %s)"
)
_DELETE = (
    "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE (xact_id, seq) <= (%s::text::xid8, %s) "
    "ORDER BY xact_id, seq LIMIT %s)"
)


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where the leader is in the inbox: the last row applied, in read order (transaction id, then seq)."""

    xact: int
    seq: int


START = Position(0, 0)
"""Before every row."""


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted body as a follower stores it."""

    received_at: float
    replica: str
    kind: str
    body: str
    principal: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored body as the leader reads it."""

    seq: int
    received: Received
    xact: int
    """The id of the transaction that inserted it."""

    @property
    def position(self) -> Position:
        return Position(self.xact, self.seq)


async def insert(conn: psycopg.AsyncConnection[Any], rows: Sequence[Received]) -> None:
    """All rows and the notice in one transaction (the notice goes out only if it commits); raises on any
    failure, with nothing of it kept."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            _INSERT, [(r.received_at, r.replica, r.kind, r.body, r.principal, r.source) for r in rows]
        )
        await cur.execute(_NOTIFY, (CHANNEL,))


async def listen(conn: psycopg.AsyncConnection[Any]) -> None:
    """Subscribe an autocommit connection to the followers' notices."""
    await conn.execute(f"LISTEN {CHANNEL}")


async def after(conn: psycopg.AsyncConnection[Any], position: Position, limit: int) -> list[Entry]:
    """The next stored bodies after `position` below the horizon, in read order (see the module docstring).
    A row missing here that is after `position` is still being written, or never will be. `conn` must be in
    autocommit mode: the rows are read in a snapshot taken after the horizon."""
    horizon = await _horizon(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_AFTER, (str(position.xact), position.seq, str(horizon), limit))
        found = await cur.fetchall()
    return [
        Entry(
            int(r["seq"]),
            Received(r["received_at"], r["replica"], r["kind"], r["body"], r["principal"], r["source"]),
            int(r["xact"]),
        )
        for r in found
    ]


async def _horizon(conn: psycopg.AsyncConnection[Any]) -> int:
    """Every transaction of this database with a lower id has ended."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_HORIZON)
        row = await cur.fetchone()
    if row is None or row["horizon"] is None:
        raise psycopg.DataError("the inbox horizon query returned nothing")
    return int(row["horizon"])


async def backlog(conn: psycopg.AsyncConnection[Any], position: Position) -> tuple[int, float | None]:
    """(committed rows after `position`, received_at of the oldest of them or None), readable yet or not."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BACKLOG, (str(position.xact), position.seq))
        row = await cur.fetchone()
    if row is None:
        return 0, None
    return int(row["pending"]), row["oldest"]


async def delete_through(conn: psycopg.AsyncConnection[Any], position: Position, limit: int) -> int:
    """Delete up to `limit` applied rows (at or before `position`), oldest first; how many went."""
    async with conn.cursor() as cur:
        await cur.execute(_DELETE, (str(position.xact), position.seq, limit))
        return cur.rowcount


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT 1")
