"""The inbox table (PostgreSQL only): ingest bodies a follower accepted, waiting for the leader to apply them.

    follower:  insert(rows) + NOTIFY in one transaction  ->  2xx
    leader:    after(cursor) in seq order  ->  pipeline  ->  cursor in the same writer batch as the alerts
               delete_through(committed cursor) later, in small batches

The table itself is created by the PostgreSQL schema migration:
    inbox (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL,
           replica TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, principal TEXT, source TEXT)
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
_AFTER = (
    "SELECT seq, received_at, replica, kind, body, principal, source FROM inbox WHERE seq > %s ORDER BY seq LIMIT %s"
)
_BACKLOG = "SELECT count(*) AS pending, min(received_at) AS oldest FROM inbox WHERE seq > %s"
_DELETE = "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE seq <= %s ORDER BY seq LIMIT %s)"


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


async def after(conn: psycopg.AsyncConnection[Any], cursor: int, limit: int) -> list[Entry]:
    """The next stored bodies after `cursor`, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_AFTER, (cursor, limit))
        found = await cur.fetchall()
    return [
        Entry(
            int(r["seq"]),
            Received(r["received_at"], r["replica"], r["kind"], r["body"], r["principal"], r["source"]),
        )
        for r in found
    ]


async def backlog(conn: psycopg.AsyncConnection[Any], cursor: int) -> tuple[int, float | None]:
    """(rows after `cursor`, received_at of the oldest of them or None)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_BACKLOG, (cursor,))
        row = await cur.fetchone()
    if row is None:
        return 0, None
    return int(row["pending"]), row["oldest"]


async def delete_through(conn: psycopg.AsyncConnection[Any], seq: int, limit: int) -> int:
    """Delete up to `limit` applied rows (seq <= `seq`), oldest first; how many went."""
    async with conn.cursor() as cur:
        await cur.execute(_DELETE, (seq, limit))
        return cur.rowcount


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT 1")
