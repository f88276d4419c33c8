"""Producing a service report from the store: for the CLI, the API and the monthly job.

The CLI and the job open a read-only reader of the backend per report; the API and the console read on the
daemon's reader threads. A report never takes the writer's lock and works whether the daemon runs or not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.catalogue.services import Catalogue
from daemon.clock import Clock
from daemon.housekeeping.frozen import frozen_report
from daemon.report import period as periods
from daemon.report.build import build_report
from daemon.report.period import Period
from daemon.report.render import render
from daemon.storage.drills import drill_results
from daemon.storage.reading import reading
from daemon.storage.sql import Backend, Sql

log = logging.getLogger(__name__)

CONTENT_TYPES = {"html": "text/html", "md": "text/markdown", "json": "application/json"}


def produce(
    backend: Backend,
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
    with reading(backend) as sql:
        return report_text(sql, catalogue, period, now=now, time_zone=time_zone, service=service, fmt=fmt)


def report_text(
    sql: Sql,
    catalogue: Catalogue,
    period: Period,
    *,
    now: float,
    time_zone: str = "UTC",
    service: str | None = None,
    fmt: str = "json",
) -> str:
    """The rendered report of a period, read through `sql` (for the daemon's reader threads). A month
    housekeeping froze is served as it was frozen, whatever was pruned since."""
    # An unknown service is still refused by build_report, frozen month or not.
    known = service is None or service in catalogue.names()
    frozen = frozen_report(sql, period.name, time_zone, now=now, service=service) if known else None
    report = (
        frozen
        if frozen is not None
        else build_report(
            sql,
            catalogue,
            period,
            now=now,
            time_zone=time_zone,
            service=service,
            drills=drill_results(sql, period.start, period.end),
        )
    )
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
        backend: Backend,
        catalogue: Callable[[], Catalogue],
        directory: Path,
        clock: Clock,
        *,
        time_zone: str,
        formats: Sequence[str],
    ) -> None:
        self._backend = backend
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
            text = produce(self._backend, catalogue, name, now=now, time_zone=self._tz, fmt=fmt)
            path = self._dir / f"itsmd-report-{name}.{fmt}"
            write_atomically(path, text)
            written.append(path)
        log.info("service report for %s written: %s", name, ", ".join(str(p) for p in written))
        return written
