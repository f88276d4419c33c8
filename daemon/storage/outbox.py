"""The outbox table: one row per event and receiver, a full state written through the group-commit writer;
loading the pending deliveries at start and the dead letters for the API and the console."""

from __future__ import annotations

from typing import Any

from daemon.notify.outbox.deliveries import Delivery, State
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql

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
_KEY = ("event_id", "receiver")
COLUMNS = ", ".join(_NAMES)
UPSERT = Statement(
    f"INSERT INTO outbox ({COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{n} = excluded.{n}" for n in _NAMES if n not in _KEY),
    order=50,
)
PRUNE = Statement(
    "DELETE FROM outbox WHERE (state = 'delivered' AND updated_at < ?) OR (state = 'dead' AND updated_at < ?)",
    order=51,
)


def delivery_row(d: Delivery) -> tuple[Any, ...]:
    """The UPSERT row of a delivery, in COLUMNS order."""
    return (
        d.event_id,
        d.receiver,
        d.seq,
        d.kind,
        d.incident_id,
        d.created_at,
        d.body,
        d.state.value,
        d.attempts,
        d.next_attempt,
        d.last_error,
        d.updated_at,
    )


def from_row(r: Row) -> Delivery:
    d = Delivery(
        r["event_id"],
        r["receiver"],
        r["seq"],
        r["kind"],
        r["incident_id"],
        r["created_at"],
        r["body"],
        State(r["state"]),
        r["attempts"],
        r["next_attempt"],
        r["last_error"],
        r["updated_at"],
    )
    d.committed = d.version  # it was read from the store
    return d


def load_pending(sql: Sql) -> tuple[list[Delivery], int]:
    """Pending deliveries in outbox order, and the next sequence number."""
    pending = [from_row(r) for r in sql.rows(f"SELECT {COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY seq")]
    last = sql.scalar("SELECT max(seq) AS last_seq FROM outbox")
    return pending, (last or 0) + 1


def dead_letters(sql: Sql, receiver: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    query = f"SELECT {COLUMNS} FROM outbox WHERE state = 'dead'"
    args: list[Any] = []
    if receiver is not None:
        query += " AND receiver = ?"
        args.append(receiver)
    query += " ORDER BY seq DESC LIMIT ? OFFSET ?"
    out = []
    for r in sql.rows(query, [*args, limit, offset]):
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
