"""The outbox table: one row per event and receiver, a full state written through the group-commit writer."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from daemon.storage.database import Statement


class State(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    """Not delivered within the receiver's max_age: kept for the API, never sent again."""


_NAMES = (
    "event_id",
    "receiver",
    "seq",
    "kind",
    "incident_id",
    "created_at",
    "body",
    "state",
    "attempts",
    "next_attempt",
    "last_error",
    "updated_at",
)
COLUMNS = ", ".join(_NAMES)
UPSERT = Statement(
    f"INSERT OR REPLACE INTO outbox ({COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))})",  # noqa: S608
    order=50,
)


PRUNE = Statement(
    "DELETE FROM outbox WHERE (state = 'delivered' AND updated_at < ?) OR (state = 'dead' AND updated_at < ?)",
    order=51,
)
DELIVERED_RETENTION = 7 * 86400.0
DEAD_RETENTION = 30 * 86400.0
"""How long delivered and dead-lettered rows stay in the store; pending ones stay until they are settled."""


@dataclass(slots=True, eq=False)
class Delivery:
    event_id: str
    receiver: str
    seq: int
    """Outbox order: receivers get an incident's events in this order."""
    kind: str
    incident_id: int | None
    created_at: float
    body: str
    state: State = State.PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    updated_at: float = 0.0
    version: int = 0
    """Bumped on every change; the delivery may be sent only once this version is committed."""
    committed: int = -1

    @property
    def key(self) -> tuple[str, str]:
        return (self.event_id, self.receiver)

    @property
    def sendable(self) -> bool:
        return self.state is State.PENDING and self.committed == self.version

    def row(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.receiver,
            self.seq,
            self.kind,
            self.incident_id,
            self.created_at,
            self.body,
            self.state.value,
            self.attempts,
            self.next_attempt,
            self.last_error,
            self.updated_at,
        )


def from_row(r: tuple[Any, ...]) -> Delivery:
    d = Delivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], State(r[7]), r[8], r[9], r[10], r[11])
    d.committed = d.version  # it was read from the store
    return d


def load_pending(conn: sqlite3.Connection) -> tuple[list[Delivery], int]:
    """Pending deliveries in outbox order, and the next sequence number."""
    sql = f"SELECT {COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY seq"  # noqa: S608
    pending = [from_row(r) for r in conn.execute(sql)]
    last = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
    return pending, (last or 0) + 1


def dead_letters(conn: sqlite3.Connection, receiver: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    sql = f"SELECT {COLUMNS} FROM outbox WHERE state = 'dead'"  # noqa: S608
    args: list[Any] = []
    if receiver is not None:
        sql += " AND receiver = ?"
        args.append(receiver)
    sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
    out = []
    for r in conn.execute(sql, [*args, limit, offset]):
        d = from_row(r)
        out.append(
            {
                "event_id": d.event_id,
                "receiver": d.receiver,
                "kind": d.kind,
                "incident_id": d.incident_id,
                "created_at": d.created_at,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "dead_at": d.updated_at,
                "body": d.body,
            }
        )
    return out
