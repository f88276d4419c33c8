"""Maintenance windows, recurring (cron) or absolute, each in its own time zone; and SLA time around them.

SLA time is wall time minus the time inside maintenance windows. `deadline()` walks forward from a start
until a budget of SLA time is used up; `counted()` measures SLA time between two instants.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from daemon.durations import PositiveDuration
from daemon.scheduler.cron import cron_trigger

MAX_STEPS = 10_000
"""Windows stepped over in one computation; a cron matching every minute must not spin forever."""
CACHE_MARGIN = 86400.0
CACHE_LIMIT = 2048


class _Starts:
    """Start times of a recurring window, computed once and kept (sorted, without gaps from `low` on).

    Finding the next cron match costs APScheduler ~0.3 ms; SLA deadlines ask for the same few starts
    again and again (every incident of a service, forward from about now), so they are remembered.
    """

    def __init__(self, trigger: CronTrigger) -> None:
        self._trigger = trigger
        self._starts: list[float] = []
        self._low = math.inf
        self._searched_to = -math.inf
        self._exhausted = False

    def next_start(self, at: float) -> float | None:
        if at < self._low or at > self._searched_to + CACHE_MARGIN or len(self._starts) > CACHE_LIMIT:
            # Start a fresh run a margin before `at`: the next queries look back by a window's length.
            self._low = at - CACHE_MARGIN
            self._starts, self._searched_to, self._exhausted = [], self._low, False
        while not self._starts or self._starts[-1] < at:
            if self._exhausted:
                return None
            fire = self._trigger.get_next_fire_time(None, datetime.fromtimestamp(self._searched_to, UTC))
            if fire is None:
                self._exhausted = True
                return None
            start = fire.timestamp()
            self._starts.append(start)
            self._searched_to = start + 1.0  # cron matches are whole seconds apart at least
        return self._starts[bisect.bisect_left(self._starts, at)]


class MaintenanceWindow(BaseModel):
    """Either `cron` + `duration` (a window opens at every cron match) or `start` + `end` (one window).
    Times without an offset are in `timezone` (default UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    name: str = ""
    cron: str | None = None
    duration: PositiveDuration | None = None
    start: datetime | None = None
    end: datetime | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (use an IANA name like Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        recurring = self.cron is not None or self.duration is not None
        absolute = self.start is not None or self.end is not None
        if recurring == absolute:
            raise ValueError("give either cron and duration, or start and end")
        if recurring:
            if self.cron is None or self.duration is None:
                raise ValueError("a recurring window needs both cron and duration")
            try:
                cron_trigger(self.cron, self.timezone)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
        else:
            if self.start is None or self.end is None:
                raise ValueError("an absolute window needs both start and end")
            if self._abs(self.end) <= self._abs(self.start):
                raise ValueError("end must be after start")
        return self

    @cached_property
    def _bounds(self) -> tuple[float, float] | None:
        if self.start is None or self.end is None:
            return None
        return self._abs(self.start), self._abs(self.end)

    def _abs(self, when: datetime) -> float:
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(self.timezone))
        return when.timestamp()

    @cached_property
    def _trigger(self) -> _Starts | None:
        if self.cron is None:
            return None
        return _Starts(cron_trigger(self.cron, self.timezone))

    def _next_start(self, at: float) -> float | None:
        """Earliest window start >= at."""
        starts = self._trigger
        if starts is None:
            if self._bounds is None:
                return None
            start = self._bounds[0]
            return start if start >= at else None
        return starts.next_start(at)

    @property
    def length(self) -> float:
        if self.duration is not None:
            return self.duration
        if self.start is None or self.end is None:  # the validator makes this impossible
            return 0.0
        return self._abs(self.end) - self._abs(self.start)

    def covering(self, at: float) -> tuple[float, float] | None:
        """The window (start, end) that contains `at`, if any."""
        if self._trigger is None:
            if self._bounds is None:  # the validator makes this impossible
                return None
            start, end = self._bounds
            return (start, end) if start <= at < end else None
        # A window [s, s + d) contains `at` when some start s lies in (at - d, at].
        opened = self._next_start(at - self.length + 0.001)
        if opened is not None and opened <= at:
            return opened, opened + self.length
        return None

    def next_window(self, at: float) -> tuple[float, float] | None:
        start = self._next_start(at)
        return (start, start + self.length) if start is not None else None


def covering(windows: Sequence[MaintenanceWindow], at: float) -> float | None:
    """End of the maintenance that covers `at` (following overlapping windows), or None."""
    end: float | None = None
    cursor = at
    for _ in range(MAX_STEPS):
        found = [w for w in (window.covering(cursor) for window in windows) if w is not None]
        if not found:
            return end
        cursor = max(e for _, e in found)
        end = cursor
    return end


def in_maintenance(windows: Sequence[MaintenanceWindow], at: float) -> bool:
    return any(w.covering(at) is not None for w in windows)


def deadline(windows: Sequence[MaintenanceWindow], start: float, budget: float) -> float:
    """When `budget` seconds of SLA time have passed, counting from `start`."""
    cursor, left = start, budget
    for _ in range(MAX_STEPS):
        end = covering(windows, cursor)
        if end is not None:
            cursor = end
        starts = [w for w in (window.next_window(cursor) for window in windows) if w is not None]
        next_start = min((s for s, _ in starts), default=None)
        if next_start is None or cursor + left <= next_start:
            return cursor + left
        left -= next_start - cursor
        cursor = next_start
    return cursor + left


def counted(windows: Sequence[MaintenanceWindow], start: float, end: float) -> float:
    """SLA time between start and end: wall time minus maintenance."""
    total, cursor = 0.0, start
    for _ in range(MAX_STEPS):
        if cursor >= end:
            return total
        covered = covering(windows, cursor)
        if covered is not None:
            cursor = covered
            continue
        starts = [w for w in (window.next_window(cursor) for window in windows) if w is not None]
        next_start = min((s for s, _ in starts), default=end)
        stop = min(next_start, end)
        total += stop - cursor
        cursor = stop
    return total
