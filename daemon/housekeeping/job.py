"""The housekeeping job: roll up, freeze past months, prune by policy in small batches, give space back.

Order matters and is the safety argument: a row is pruned only once everything computed from it is kept
elsewhere. Each run first extends the daily availability rollup and freezes the months that are due, and
every prune cut is held back to the rollup mark and to the start of the oldest month not frozen yet; alerts
are kept while an incident that is open, inside its reopen window or not rolled up still needs them.

Deletes go through the one writer (a collector hands them to the next batch), `batch_size` rows per kind
and commit with `pause` between commits, so ingest commits in between and a prune never holds the writer
long. Reads (counting candidates, the histories to roll up) run in a thread on a connection of their own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from daemon.availability.episodes import History
from daemon.catalogue.services import Catalogue
from daemon.clock import Clock
from daemon.housekeeping import frozen
from daemon.housekeeping.config import RetentionConfig
from daemon.housekeeping.rollup import day_floor, day_rows, next_mark
from daemon.report import period as periods
from daemon.report.build import build_report
from daemon.storage import retention, rollups
from daemon.storage.availability import load_histories
from daemon.storage.database import Batch
from daemon.storage.drills import drill_results
from daemon.storage.sql import Backend, Sql
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

MONTHS_PER_RUN = 12
"""Months frozen per run: the first run on years of history spreads the work over a few runs (nothing of a
month not frozen yet is pruned meanwhile)."""
VACUUM_PAGES = 2000
"""Free pages given back per incremental vacuum step (8 MiB at 4 KiB pages): each step is a short write."""


class Housekeeping:
    def __init__(
        self,
        backend: Backend,
        writer: GroupCommitWriter,
        clock: Clock,
        config: RetentionConfig,
        *,
        catalogue: Callable[[], Catalogue],
        windows: Sequence[float],
        report_time_zone: str = "UTC",
        commit_timeout: float = 30.0,
        months_per_run: int = MONTHS_PER_RUN,
    ) -> None:
        self._backend = backend
        self._writer = writer
        self._clock = clock
        self.config = config
        self._catalogue = catalogue
        self._keep = max(windows, default=86400.0)
        self._tz = report_time_zone
        self._commit_timeout = commit_timeout
        self._months_per_run = months_per_run
        self._pending: Batch | None = None
        self._lock = asyncio.Lock()
        self.deleted: dict[str, int] = {kind.name: 0 for kind in retention.KINDS}
        self.last_run: float | None = None
        """Clock time the last run finished."""
        self.database_bytes: int | None = None
        writer.add_collector(self._collect)

    @property
    def _closing(self) -> bool:
        """The daemon stops: stop at the next batch (what was written stays written; the rest waits)."""
        return self._writer.closing

    # -- the writer ----------------------------------------------------------------------------------

    def _collect(self, batch: Batch, lazy: bool) -> None:
        if self._pending is not None:
            batch.absorb(self._pending)
            self._pending = None

    async def _write(self, batch: Batch) -> None:
        if self._pending is None:
            self._pending = batch
        else:
            self._pending.absorb(batch)
        await self._writer.durable(self._writer.changed(), self._commit_timeout)

    async def _read(self, work: Callable[[Sql], T]) -> T:
        def run() -> T:
            sql = self._backend.reader()
            try:
                return work(sql)
            finally:
                sql.close()

        return await asyncio.to_thread(run)

    # -- a run ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """One pass; a run still going when the next is due makes that one wait (the scheduler coalesces)."""
        if self._closing:
            return
        async with self._lock:
            now = self._clock.now()
            mark = await self._roll_up(now)
            oldest_open_month = await self._freeze(now)
            hold = min(mark, oldest_open_month)
            if self.config.enabled:
                for kind in retention.KINDS:
                    await self._prune(kind, now, hold)
            if self._closing:
                return
            await asyncio.to_thread(retention.free_space, self._backend, pages=VACUUM_PAGES)
            self.database_bytes = await self._read(retention.database_bytes)
            self.last_run = self._clock.now()

    async def _roll_up(self, now: float) -> float:
        """Extend the daily availability rollup as far as it may go; returns its mark."""
        catalogue = self._catalogue()

        def read(sql: Sql) -> tuple[float | None, float | None, list[History]]:
            since = rollups.mark(sql, rollups.AVAILABILITY)
            return since, rollups.first_incident_at(sql), load_histories(sql, since=since)

        since, first, histories = await self._read(read)
        until = next_mark(now, self._keep, histories)
        start = since if since is not None else day_floor(first) if first is not None else until
        if since is not None and until <= since:
            return since
        until = max(until, start)
        batch = Batch()
        for row in day_rows(histories, catalogue, start, until):
            batch.upsert(rollups.SET_DAY, row[:2], row)
        batch.upsert(rollups.SET_MARK, rollups.AVAILABILITY, (rollups.AVAILABILITY, until))
        await self._write(batch)
        log.info("availability rolled up to %s", datetime.fromtimestamp(until, ZoneInfo("UTC")).date())
        return until

    async def _freeze(self, now: float) -> float:
        """Freeze the months that are due (oldest first, a few per run); returns the start of the oldest month
        not frozen, before which nothing may be pruned yet."""
        catalogue = self._catalogue()
        zone = ZoneInfo(self._tz)

        def read(sql: Sql) -> tuple[float | None, set[str]]:
            return rollups.first_incident_at(sql), rollups.frozen_months(sql, self._tz)

        first, done = await self._read(read)
        if first is None:
            return now
        name = datetime.fromtimestamp(first, zone).strftime("%Y-%m")
        frozen_now = 0
        while True:
            month = periods.month(name, self._tz)
            if month.end + frozen.FREEZE_AFTER > now:
                return month.start
            if name not in done:
                if frozen_now >= self._months_per_run:
                    return month.start
                build = functools.partial(_build, catalogue=catalogue, month=month, now=now, tz=self._tz)
                body = await self._read(build)
                batch = Batch()
                batch.upsert(rollups.FREEZE_MONTH, (month.name, self._tz), (month.name, self._tz, now, body))
                await self._write(batch)
                frozen_now += 1
                log.info("service report of %s frozen", month.name)
            name = datetime.fromtimestamp(month.end, zone).strftime("%Y-%m")

    async def _prune(self, kind: retention.Kind, now: float, hold: float) -> None:
        cut = now - self.config.period(kind.name)
        # Records wait for the hold (rolled up, their month frozen). Alerts are needed only through their
        # incidents: those resolved since the hold (or not closed) keep theirs.
        params: tuple[Any, ...] = (cut, hold) if kind is retention.ALERTS else (min(cut, hold),)
        params = (*params, self.config.batch_size)
        for _ in range(self.config.max_batches):
            if self._closing:
                return
            found = await self._read(lambda sql: retention.candidates(sql, kind, params))
            if not found:
                return
            batch = Batch()
            for statement in kind.deletes:
                batch.append(statement, params)
            await self._write(batch)
            self.deleted[kind.name] += found
            if found < self.config.batch_size:
                return
            await asyncio.sleep(self.config.pause)


def _build(sql: Sql, *, catalogue: Catalogue, month: periods.Period, now: float, tz: str) -> str:
    """The month's report as JSON, built from the rows."""
    report = build_report(
        sql, catalogue, month, now=now, time_zone=tz, drills=drill_results(sql, month.start, month.end)
    )
    return frozen.to_json(report)
