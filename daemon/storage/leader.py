"""Who leads now, as the leader_lease row says: what a follower needs to forward reads.

    leader_lease (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT, url TEXT,
                  expires_at TIMESTAMPTZ)
The lease itself (taking, renewing, giving up) is daemon/replica/lease.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

# Expiry is judged by the database's clock, the one the lease is written by, not this host's.
_CURRENT = (
    "SELECT holder, url, epoch FROM leader_lease "
    "WHERE id = 1 AND holder IS NOT NULL AND url IS NOT NULL AND expires_at > now()"
)


@dataclass(frozen=True, slots=True)
class Leader:
    name: str
    url: str
    epoch: int


async def current(conn: psycopg.AsyncConnection[Any]) -> Leader | None:
    """The replica holding an unexpired lease, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CURRENT)
        row = await cur.fetchone()
    if row is None:
        return None
    return Leader(str(row["holder"]), str(row["url"]), int(row["epoch"]))
