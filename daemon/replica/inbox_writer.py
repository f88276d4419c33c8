"""A follower's group commit into the inbox: concurrent requests share one transaction.

A request hands its row over and waits; the writer task takes what has queued (waiting a few milliseconds
when it is alone, so a burst shares the commit), inserts all of it with one executemany and the NOTIFY in one
transaction, and only then wakes the waiters. A failed transaction fails every waiter of it (503): nothing is
acknowledged that did not commit. A waiter that gives up (commit_timeout) answers 503 too; its row, if it
was already being written, may still commit, and the sender's retry is then a duplicate the leader applies
idempotently (alerts are keyed by fingerprint).

The leader applies no row committed after this writer's transaction began until that transaction ends
(daemon/storage/inbox.py), so the session ends an open transaction left idle for IDLE_IN_TRANSACTION seconds
(this process stopped or stalled mid-transaction): rolled back, its rows were never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from daemon.errors import Overloaded, StoreUnavailable
from daemon.storage import inbox

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
IDLE_IN_TRANSACTION = 5.0


class InboxWriter:
    def __init__(self, dsn: str, *, window: float = 0.002, max_rows: int = 1000, max_queued: int = 100_000) -> None:
        self._dsn = dsn
        self._window = window
        self._max_rows = max_rows
        self._max_queued = max_queued
        self._queue: list[tuple[inbox.Received, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._closing = False
        self.healthy = True
        self.last_error: str | None = None
        self.commits = 0
        self.rows = 0

    async def put(self, row: inbox.Received, within: float) -> None:
        """Return once `row` is committed; StoreUnavailable when that fails or takes over `within` seconds,
        Overloaded when too many rows already wait."""
        if self._closing:
            raise StoreUnavailable("this replica is shutting down")
        if len(self._queue) >= self._max_queued:
            raise Overloaded(f"inbox queue full: {len(self._queue)} bodies wait for the database")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, fut))
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            # Cancelled: if not taken yet it is never written; if taken, its outcome is no longer awaited.
            fut.cancel()
            raise StoreUnavailable(self.last_error or "the inbox did not commit in time") from None

    async def run(self) -> None:
        """The writer loop; returns after close() once the queue is empty."""
        try:
            while True:
                await self._wake.wait()
                if not self._queue and self._closing:
                    return
                if len(self._queue) < self._max_rows and not self._closing:
                    await asyncio.sleep(self._window)
                self._wake.clear()
                taken = [(r, f) for r, f in self._queue[: self._max_rows] if not f.cancelled()]
                del self._queue[: self._max_rows]
                if self._queue or self._closing:
                    self._wake.set()
                if taken:
                    await self._commit(taken)
        finally:
            await self._disconnect()

    async def _commit(self, taken: list[tuple[inbox.Received, asyncio.Future[None]]]) -> None:
        try:
            conn = await self._connection()
            await inbox.insert(conn, [row for row, _ in taken])
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._disconnect()
            if self.healthy:
                log.error("inbox write failed; ingest answers 503 until the database takes writes: %s", exc)
            self.healthy = False
            self.last_error = f"inbox write failed: {exc}"
            failure = StoreUnavailable(self.last_error)
            for _, fut in taken:
                if not fut.done():
                    fut.set_exception(failure)
            return
        if not self.healthy:
            log.info("inbox writes recovered")
        self.healthy = True
        self.last_error = None
        self.commits += 1
        self.rows += len(taken)
        for _, fut in taken:
            if not fut.done():
                fut.set_result(None)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)),
            CONNECT_TIMEOUT,
        )
        try:
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{int(IDLE_IN_TRANSACTION * 1000)}ms",),
            )
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def close(self) -> None:
        """Refuse new rows; run() writes what is queued and returns."""
        self._closing = True
        self._wake.set()
