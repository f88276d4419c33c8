"""Reads of stored changes for the API: a read-only connection in its own thread (WAL: never blocks the writer).

The API shows committed changes, like every other REST read: what the store holds is what happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from daemon.changes.store import Json, get_change, list_changes
from daemon.storage.database import connect

T = TypeVar("T")


class ChangeReader:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itsmd-changes-reader")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, read_only=True)
            self._local.conn = conn
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._conn()))

    async def changes(
        self, *, service: str | None, outcome: str | None, state: str, limit: int, offset: int
    ) -> list[Json]:
        return await self._run(
            lambda conn: list_changes(conn, service=service, outcome=outcome, state=state, limit=limit, offset=offset)
        )

    async def change(self, change_id: int) -> Json | None:
        return await self._run(lambda conn: get_change(conn, change_id))

    def close(self) -> None:
        def close_conn() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()

        self._pool.submit(close_conn).result()
        self._pool.shutdown(wait=True)
