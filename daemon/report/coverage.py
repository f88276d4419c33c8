"""Which part of a report's period its figures cover: the report says so rather than dividing by a whole month.

A period that has not ended is covered to date (up to the report's time); one that starts before the store's
first record is covered from that record, because before it the store knows nothing (a quiet month and a
month before itsmd ran look the same, and only the first is 100 %). A period with no covered time at all (in
the future, or entirely before the first record) has no data: no availability, no verdict.
"""

from __future__ import annotations

from daemon.report.model import Coverage
from daemon.report.period import Period


def coverage(period: Period, *, now: float, first: float | None) -> Coverage:
    to_date = now < period.end
    start = period.start if first is None else max(period.start, first)
    end = min(period.end, now)
    from_first = first is not None and first > period.start
    if first is None or start >= end:
        return Coverage(None, None, to_date, first, from_first)
    return Coverage(start, end, to_date, first, from_first)
