"""The one writer: group commit of everything that changed, so durability does not cost throughput.

Stages mark records as they change: `changed()` for what a request must not be acknowledged without
(new alerts, status changes, incident transitions), `touched()` for what may be written lazily (last-seen
times, counters). Each mark returns the sequence number of the batch that will hold it; a request awaits
`durable(seq)` before it answers. Rows are taken from the records when the batch is cut, so ten changes to
one alert between two commits cost one row.

If a commit fails (disk full, read-only file) the batch is kept and merged into the next attempt, the
writer backs off, and waiters time out into 503 answers: the sender retries, and nothing that was
acknowledged depended on the failed batch. A batch refused as Fenced (another replica leads) is never retried:
the writer stops committing, answers every waiter 503 and tells `on_fenced`; the new leader has the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from daemon.errors import Fenced, StorageError, StoreUnavailable
from daemon.storage.database import Batch
from daemon.storage.sql import Backend

log = logging.getLogger(__name__)

Collector = Callable[[Batch, bool], None]
"""Adds the rows of everything its stage marked since the last cut to the batch; touched-only records
too when the second argument is true (the periodic flush)."""
CommitListener = Callable[[Batch], None]
"""Hears every batch once it is durable (on the event loop): live views announce what changed."""


class GroupCommitWriter:
    def __init__(
        self,
        db: Backend,
        *,
        flush_interval: float = 1.0,
        max_backoff: float = 5.0,
        on_fenced: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._on_fenced = on_fenced
        self._fenced: str | None = None
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._collectors: list[Collector] = []
        self._commit_listeners: list[CommitListener] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itsmd-writer")
        self._open_seq = 1
        self._committed_seq = 0
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._urgent = asyncio.Event()
        self._lazy_pending = False
        self._last_lazy_flush = 0.0
        self._failed: Batch | None = None
        self._closing = False
        self.healthy = True
        self.last_error: str | None = None
        self.commits = 0

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    @property
    def held_rows(self) -> int:
        """Alert rows of a failed batch kept for the next attempt."""
        return len(self._failed.alerts) if self._failed is not None else 0

    @property
    def closing(self) -> bool:
        """close() was called: collectors hand over everything they hold, lazy or not."""
        return self._closing

    @property
    def committed_seq(self) -> int:
        return self._committed_seq

    def changed(self) -> int:
        """Something was changed that must be durable before the request that caused it is answered."""
        self._urgent.set()
        return self._open_seq

    def touched(self) -> None:
        """Something changed that may be written with the next periodic flush."""
        self._lazy_pending = True

    async def durable(self, seq: int, within: float) -> None:
        """Wait until batch `seq` is committed; StoreUnavailable if that takes longer than `within` seconds."""
        if seq <= self._committed_seq:
            return
        if self._fenced is not None:
            raise StoreUnavailable(self._fenced)
        fut = self._waiters.get(seq)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiters[seq] = fut
        try:
            await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            raise StoreUnavailable(self.last_error or "the store did not commit in time") from None

    async def run(self) -> None:
        """The writer loop; returns after close() once everything marked has been committed."""
        backoff = 0.05
        while self._fenced is None:
            if not self._urgent.is_set() and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._flush_interval)
                if not self._urgent.is_set() and not self._lazy_pending and self._failed is None:
                    continue
            if self._closing and not self._urgent.is_set() and not self._lazy_pending and self._failed is None:
                return
            ok = await self._commit_once()
            if ok:
                backoff = 0.05
            else:
                if self._closing:
                    log.error("giving up on unwritten changes at shutdown: %s", self.last_error)
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _commit_once(self) -> bool:
        if self._fenced is not None:
            return False
        loop = asyncio.get_running_loop()
        self._urgent.clear()
        # Touched-only records ride along at most once per flush interval, not with every urgent commit:
        # under steady re-sends they would otherwise make every commit as large as the traffic.
        lazy = self._closing or loop.time() - self._last_lazy_flush >= self._flush_interval
        if lazy:
            self._lazy_pending = False
            self._last_lazy_flush = loop.time()
        seq = self._open_seq
        self._open_seq += 1
        batch = Batch()
        for collect in self._collectors:
            collect(batch, lazy)
        if self._failed is not None:
            self._failed.absorb(batch)
            batch, self._failed = self._failed, None
        if batch:
            try:
                await loop.run_in_executor(self._thread, self._db.write, batch)
            except Fenced as exc:
                self._stop_fenced(str(exc))
                return False
            except Exception as exc:
                # Whatever the cause, the batch is kept: losing it would lose acknowledged-to-be data.
                self._failed = batch
                if self.healthy:
                    log.error(
                        "store write failed, holding the batch until it recovers: %s",
                        exc,
                        # Store errors are expected (disk full, server gone): their message says it all.
                        exc_info=not isinstance(exc, StorageError | OSError),
                    )
                self.healthy = False
                self.last_error = f"store write failed: {exc}"
                return False
            self.commits += 1
            if not self.healthy:
                log.info("store writes recovered")
            self.healthy = True
            self.last_error = None
            for listener in self._commit_listeners:
                try:
                    listener(batch)
                except Exception:
                    # A listener's failure must never turn a commit into a failed one.
                    log.exception("commit listener failed")
        self._committed_seq = seq
        for key in [k for k in self._waiters if k <= seq]:
            fut = self._waiters.pop(key)
            if not fut.done():
                fut.set_result(None)
        return True

    def _stop_fenced(self, reason: str) -> None:
        """Nothing of this batch was acknowledged and no later one can commit: its waiters get 503 now."""
        log.error("store refused this replica's writes, no longer committing: %s", reason)
        self._fenced = self.last_error = f"not the leader any more: {reason}"
        self.healthy = False
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(StoreUnavailable(self._fenced))
                fut.exception()  # retrieved: a waiter that already timed out must not be logged as unhandled
        self._waiters.clear()
        if self._on_fenced is not None:
            self._on_fenced()

    async def flush(self) -> None:
        """Commit everything marked so far, now; StoreUnavailable if the write fails."""
        if not await self._commit_once():
            raise StoreUnavailable(self.last_error or "store write failed")

    def close(self) -> None:
        """Ask run() to write what is left and return."""
        self._closing = True
        self._urgent.set()

    async def checkpoint(self) -> None:
        """Move the WAL into the main file in another thread, so commits never wait for it."""
        await asyncio.get_running_loop().run_in_executor(None, self._db.checkpoint)

    def shutdown_thread(self) -> None:
        self._thread.shutdown(wait=True)
