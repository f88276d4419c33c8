"""Report periods: a calendar month such as 2026-10, in a time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.errors import InvalidInput

FIRST_YEAR, LAST_YEAR = 1970, 9998
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    start: float
    end: float
    days: tuple[tuple[str, float, float], ...]
    """Each calendar day of the period: its date and [start, end) in epoch seconds (DST days differ)."""


def month(name: str, tz: str = "UTC") -> Period:
    m = _MONTH.fullmatch(name)
    if m is None:
        raise InvalidInput("invalid_period", f"period must be a month written YYYY-MM, such as 2026-10: {name!r}")
    zone = ZoneInfo(tz)
    year, mon = int(m.group(1)), int(m.group(2))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        # Found by the OpenAPI fuzz: year 0000 is no date at all, 9999-12 has no month after it.
        raise InvalidInput("invalid_period", f"period year must be {FIRST_YEAR}..{LAST_YEAR}: {name!r}")
    first = datetime(year, mon, 1, tzinfo=zone)
    after = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    days: list[tuple[str, float, float]] = []
    day = first
    while day < after:
        # Calendar arithmetic on the date, then attach the zone: adding 24 h would drift across DST.
        following = datetime.combine(day.date() + timedelta(days=1), day.timetz())
        days.append((day.date().isoformat(), day.timestamp(), following.timestamp()))
        day = following
    return Period(name, first.timestamp(), after.timestamp(), tuple(days))
