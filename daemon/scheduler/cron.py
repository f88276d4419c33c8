"""Standard five-field cron expressions as APScheduler 3 triggers.

APScheduler 3 numbers weekdays from Monday = 0, even in `CronTrigger.from_crontab`, so "0 3 * * 2" would
fire on Wednesdays instead of the Tuesdays every crontab means. Weekday numbers are translated to names,
which mean the same in both.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_PART = re.compile(r"(\*|[0-7](?:-[0-7])?)(?:/([1-9]))?")


def cron_weekdays(field: str) -> str:
    """Crontab weekdays (0 and 7 Sunday, 1 Monday) as names for APScheduler."""
    if not any(c.isdigit() for c in field) and "/" not in field:
        return field  # "*" or names such as mon-fri: the same in both
    days: set[int] = set()
    for part in field.split(","):
        m = _WEEKDAY_PART.fullmatch(part)
        if m is None:
            raise ValueError(f"weekday {part!r}: use 0-7 (0 and 7 are Sunday), ranges like 1-5, or steps like */2")
        span, step = m.group(1), int(m.group(2) or 1)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (int(x) for x in span.split("-"))
            if first > last:
                raise ValueError(f"weekday range {span!r} runs backwards")
        else:
            first = last = int(span)
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def cron_trigger(schedule: str, time_zone: str = "UTC") -> CronTrigger:
    """ValueError naming the problem for anything but five valid fields."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"wanted 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=cron_weekdays(weekday),
        timezone=ZoneInfo(time_zone),
    )
