"""Producing a service report from a store file: for the CLI, the API and the monthly job.

Each call opens its own read-only connection, so a report never takes the writer's lock and works whether
the daemon runs or not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.catalogue.services import Catalogue
from daemon.clock import Clock
from daemon.drills.store import drill_results
from daemon.errors import StorageError
from daemon.housekeeping.frozen import frozen_report
from daemon.report import period as periods
from daemon.report.build import build_report
from daemon.report.render import render
from daemon.storage.database import connect
from daemon.storage.sqlite_sql import SqliteSql

log = logging.getLogger(__name__)

CONTENT_TYPES = {"html": "text/html", "md": "text/markdown", "json": "application/json"}


def produce(
    db_path: Path,
    catalogue: Catalogue,
    period_name: str,
    *,
    now: float,
    time_zone: str = "UTC",
    service: str | None = None,
    fmt: str = "json",
) -> str:
    """The rendered report. RequestError for a bad period or service; StorageError if the store is unreadable."""
    period = periods.month(period_name, time_zone)
    if not db_path.is_file():
        raise StorageError(f"no store at {db_path}")
    try:
        conn = connect(db_path, read_only=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the store {db_path} read-only: {exc}") from exc
    try:
        # A month housekeeping froze stays as it was, whatever was pruned since (an unknown service is
        # still refused by build_report).
        known = service is None or service in catalogue.names()
        try:
            frozen = frozen_report(SqliteSql(conn, owned=False), period.name, time_zone, now=now, service=service)
        except sqlite3.OperationalError:
            frozen = None  # a store of an older version, read before the daemon migrated it: nothing frozen
        report = (
            frozen
            if frozen is not None and known
            else build_report(
                conn,
                catalogue,
                period,
                now=now,
                time_zone=time_zone,
                service=service,
                drills=drill_results(conn, period.start, period.end),
            )
        )
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the store {db_path}: {exc}") from exc
    finally:
        conn.close()
    return render(report, fmt)


def previous_month(now: float, time_zone: str) -> str:
    today = datetime.fromtimestamp(now, ZoneInfo(time_zone))
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a half-written report."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class MonthlyReports:
    """The scheduled job: writes last month's report, one file per format, as itsmd-report-YYYY-MM.<ext>."""

    def __init__(
        self,
        db_path: Path,
        catalogue: Callable[[], Catalogue],
        directory: Path,
        clock: Clock,
        *,
        time_zone: str,
        formats: Sequence[str],
    ) -> None:
        self._db_path = db_path
        self._catalogue = catalogue
        self._dir = directory
        self._clock = clock
        self._tz = time_zone
        self._formats = tuple(formats)

    async def run(self) -> None:
        await asyncio.to_thread(self.write)

    def write(self) -> list[Path]:
        """Blocking (reads the store, writes files)."""
        now = self._clock.now()
        name = previous_month(now, self._tz)
        catalogue = self._catalogue()
        self._dir.mkdir(parents=True, exist_ok=True)
        written = []
        for fmt in self._formats:
            text = produce(self._db_path, catalogue, name, now=now, time_zone=self._tz, fmt=fmt)
            path = self._dir / f"itsmd-report-{name}.{fmt}"
            write_atomically(path, text)
            written.append(path)
        log.info("service report for %s written: %s", name, ", ".join(str(p) for p in written))
        return written
