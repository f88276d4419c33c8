"""Which part of a report's period its figures cover: the report says so rather than dividing by a whole month.

A period that has not ended is covered to date (up to the report's time); one that starts before the store's
first record is covered from that record, because before it the store knows nothing (a quiet month and a
month before itsmd ran look the same, and only the first is 100 %). A period with no covered time at all (in
the future, or entirely before the first record) has no data: no availability, no verdict.
"""

from __future__ import annotations

import sqlite3

from daemon.report.model import Coverage
from daemon.report.period import Period

# Every table whose rows carry the instant something was recorded; the earliest of them is the first record.
_FIRST = (
    "SELECT MIN(t) FROM ("
    "SELECT MIN(first_seen) AS t FROM alerts UNION ALL SELECT MIN(opened_at) FROM incidents "
    "UNION ALL SELECT MIN(at) FROM timeline UNION ALL SELECT MIN(at) FROM audit_events "
    "UNION ALL SELECT MIN(created_at) FROM runs UNION ALL SELECT MIN(started_at) FROM drill_runs)"
)


def first_record(conn: sqlite3.Connection) -> float | None:
    """The earliest instant the store recorded anything; None for an empty store."""
    (at,) = conn.execute(_FIRST).fetchone()
    return float(at) if at is not None else None


def coverage(period: Period, *, now: float, first: float | None) -> Coverage:
    to_date = now < period.end
    start = period.start if first is None else max(period.start, first)
    end = min(period.end, now)
    from_first = first is not None and first > period.start
    if first is None or start >= end:
        return Coverage(None, None, to_date, first, from_first)
    return Coverage(start, end, to_date, first, from_first)
