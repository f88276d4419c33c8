"""A store fenced by the real lease row: SQLite holds the rows, PostgreSQL's leader_lease decides whether a
batch may be written, with the same check the PostgreSQL backend makes (until that backend is on this branch)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from daemon.errors import Fenced
from daemon.storage.database import Batch, Database


class LeaseFencedDatabase(Database):
    def __init__(self, path: Path, dsn: str) -> None:
        super().__init__(path)
        self._dsn = dsn
        self.fence_epoch: int | None = None

    def write(self, batch: Batch) -> None:
        if self.fence_epoch is not None:
            with psycopg.connect(self._dsn) as conn:
                row = conn.execute("SELECT epoch FROM leader_lease WHERE id = 1 FOR SHARE").fetchone()
                if row is None or row[0] != self.fence_epoch:
                    raise Fenced(f"the lease is at epoch {row and row[0]}, this replica wrote as {self.fence_epoch}")
                super().write(batch)  # inside the lock: no takeover commits between the check and the write
        else:
            super().write(batch)
