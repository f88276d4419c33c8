"""The daily availability rollup: downtime per service and UTC day, from the same episodes as the live figures.

Days partition time, so the downtime of any span is the sum over its days of the downtime clipped to each
(merged outages and maintenance clip exactly): the rollup of the days before a mark plus the episodes after
it give the figures the whole history gives. The mark never passes the start of an episode still open (its
priority may still rise into the downtime policy, which counts it from its start) nor the longest
availability window (the tracker keeps those outages as intervals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from daemon.availability.episodes import History, episodes_of, metric_service, policy_counts
from daemon.availability.episodes import maintenance_intervals as windows_between
from daemon.availability.intervals import Interval, clip, intersect, merge, subtract, total
from daemon.catalogue.services import Catalogue

DAY = 86400.0

DayRow = tuple[str, float, float, float]
"""service, day_start, unplanned seconds, planned seconds (rollups.SET_DAY's columns)."""


def day_floor(t: float) -> float:
    return math.floor(t / DAY) * DAY


def open_since(histories: Sequence[History]) -> float | None:
    """The earliest start of an incident's current episode that has not ended (counted or not)."""
    earliest: float | None = None
    for h in histories:
        start: float | None = None
        for mark in h.marks:
            if mark.kind in ("opened", "reopened") and start is None:
                start = mark.at
            elif mark.kind == "resolved":
                start = None
        if start is not None and (earliest is None or start < earliest):
            earliest = start
    return earliest


def next_mark(now: float, keep: float, histories: Sequence[History]) -> float:
    """How far the rollup may reach now: a UTC day boundary."""
    reach = now - keep
    opened = open_since(histories)
    if opened is not None:
        reach = min(reach, opened)
    return day_floor(reach)


def day_rows(histories: Sequence[History], catalogue: Catalogue, start: float, end: float) -> list[DayRow]:
    """Rows for the days in [start, end) (both day boundaries) with any downtime."""
    outages: dict[str, list[Interval]] = {}
    for h in histories:
        service = metric_service(catalogue, h.service)
        for e in episodes_of(h, policy_counts(catalogue, service)):
            outages.setdefault(service, []).append((e.start, e.end if e.end is not None else end))
    rows: list[DayRow] = []
    for service, found in sorted(outages.items()):
        down = merge(clip(found, start, end))
        if not down:
            continue
        windows = catalogue.get(service).maintenance
        day = day_floor(down[0][0])
        while day < end and day < down[-1][1]:
            here = clip(down, day, day + DAY)
            if here:
                planned = merge(windows_between(windows, day, day + DAY))
                rows.append((service, day, total(subtract(here, planned)), total(intersect(here, planned))))
            day += DAY
    return rows
