"""Reads for the API and the console, on connections of their own in their own threads (SQLite WAL and
PostgreSQL MVCC: readers never block the writer).

They see committed data only, which is what was acknowledged. Each read is a record module's function
fn(sql, *args) run on a reader thread; the incident and alert reads the API calls most have methods here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from daemon.storage import alerts, incidents
from daemon.storage.incidents import ANY, AssignmentFilter
from daemon.storage.sql import Backend, Sql

T = TypeVar("T")
Json = dict[str, Any]


class Reader:
    def __init__(self, backend: Backend, *, threads: int = 2) -> None:
        self._backend = backend
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="itsmd-reader")
        self._local = threading.local()
        self._opened: list[Sql] = []
        self._lock = threading.Lock()

    def _sql(self) -> Sql:
        sql: Sql | None = getattr(self._local, "sql", None)
        if sql is None:
            sql = self._backend.reader()
            self._local.sql = sql
            with self._lock:
                self._opened.append(sql)
        return sql

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(sql, *args) on a reader thread: for record modules with reads of their own."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._sql(), *args))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for sql in opened:
            sql.close()

    # -- incidents ------------------------------------------------------------------------------------

    async def incidents(
        self, status: str | None, limit: int, offset: int, assignment: AssignmentFilter = ANY
    ) -> list[Json]:
        return await self.run(incidents.read_incidents, status, limit, offset, assignment)

    async def incident(self, incident_id: int) -> Json | None:
        return await self.run(incidents.read_incident, incident_id)

    # -- alerts ---------------------------------------------------------------------------------------

    async def alerts(self, status: str | None, limit: int, offset: int) -> list[Json]:
        return await self.run(alerts.read_alerts, status, limit, offset)

    async def alert(self, fingerprint: str) -> Json | None:
        return await self.run(alerts.read_alert, fingerprint)
