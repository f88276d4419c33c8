"""Per-service outage history in memory, from which availability is computed at scrape time.

An outage is the time an incident that counts as downtime is open. The ledger keeps the open outages and
the closed ones of the longest reporting window; older closed time is folded into running totals. Every
figure is a function of the outage episodes and the maintenance windows, so the same episodes read back
from the store give the same figures (recompute() is that function, and the restart path uses it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from daemon.availability.figures import WindowFigures, window_figures
from daemon.availability.intervals import Interval, intersect, merge, subtract, total

MaintenanceLookup = Callable[[str, float, float], list[Interval]]
"""Maintenance intervals of a service between two instants."""


@dataclass(frozen=True, slots=True)
class Episode:
    """One stretch of an incident counting as downtime: from open (or reopen) to resolve; end None while open."""

    service: str
    incident_id: int
    start: float
    end: float | None


@dataclass
class _Service:
    folded_unplanned: float = 0.0
    folded_planned: float = 0.0
    folded_until: float = float("-inf")
    closed: list[Interval] = field(default_factory=list)
    open: dict[int, float] = field(default_factory=dict)


class Ledger:
    def __init__(self, maintenance: MaintenanceLookup, *, keep: float) -> None:
        """`keep`: seconds of closed outages kept as intervals (the longest availability window)."""
        self._maintenance = maintenance
        self._keep = keep
        self._services: dict[str, _Service] = {}

    def restore(self, episodes: Iterable[Episode], now: float) -> None:
        for e in episodes:
            if e.end is None:
                self.started(e.service, e.incident_id, e.start)
            else:
                self._service(e.service).closed.append((e.start, e.end))
        for s in self._services.values():
            s.closed = merge(s.closed)
        self.compact(now)

    def fold_in(self, service: str, unplanned: float, planned: float, until: float) -> None:
        """Downtime already folded elsewhere (the daily rollups of the store), all of it before `until`."""
        s = self._service(service)
        s.folded_unplanned += unplanned
        s.folded_planned += planned
        s.folded_until = max(s.folded_until, until)

    def started(self, service: str, incident_id: int, at: float) -> None:
        self._service(service).open.setdefault(incident_id, at)

    def ended(self, service: str, incident_id: int, at: float) -> None:
        s = self._service(service)
        start = s.open.pop(incident_id, None)
        if start is not None and at > start:
            s.closed = merge([*s.closed, (start, at)])

    def is_open(self, service: str, incident_id: int) -> bool:
        s = self._services.get(service)
        return s is not None and incident_id in s.open

    def compact(self, now: float) -> None:
        """Fold closed outages older than `keep` into the totals (call now and then, e.g. from the sweep)."""
        cut = now - self._keep
        for name, s in self._services.items():
            # Never fold past an open outage's start: its time is counted from the live intervals.
            cut_here = min([cut, *s.open.values()])
            old = [i for i in s.closed if i[1] <= cut_here]
            if not old:
                continue
            s.closed = s.closed[len(old) :]
            unplanned, planned = self._split(name, old, old[0][0], old[-1][1])
            s.folded_unplanned += unplanned
            s.folded_planned += planned
            s.folded_until = old[-1][1]

    def downtime(self, service: str, now: float) -> tuple[float, float]:
        """Unplanned and planned downtime seconds of all history up to now: the downtime counters."""
        s = self._services.get(service)
        if s is None:
            return 0.0, 0.0
        intervals = self._intervals(s, now)
        if not intervals:
            return s.folded_unplanned, s.folded_planned
        unplanned, planned = self._split(service, intervals, intervals[0][0], now)
        return s.folded_unplanned + unplanned, s.folded_planned + planned

    def window(self, service: str, now: float, length: float) -> WindowFigures:
        s = self._services.get(service)
        start = now - length
        outages = self._intervals(s, now) if s is not None else []
        return window_figures(outages, self._maintenance(service, start, now), start, now)

    def services(self) -> list[str]:
        return sorted(self._services)

    def _service(self, name: str) -> _Service:
        s = self._services.get(name)
        if s is None:
            s = self._services[name] = _Service()
        return s

    @staticmethod
    def _intervals(s: _Service, now: float) -> list[Interval]:
        return merge([*s.closed, *((start, now) for start in s.open.values())])

    def _split(self, service: str, intervals: list[Interval], start: float, end: float) -> tuple[float, float]:
        planned = merge(self._maintenance(service, start, end))
        return total(subtract(intervals, planned)), total(intersect(intervals, planned))


def recompute(
    episodes: Sequence[Episode], maintenance: MaintenanceLookup, service: str, now: float
) -> tuple[float, float]:
    """Downtime of one service straight from the episodes, with no folding: what the ledger must equal."""
    intervals = merge(
        (e.start, min(e.end, now) if e.end is not None else now) for e in episodes if e.service == service
    )
    if not intervals:
        return 0.0, 0.0
    planned = merge(maintenance(service, intervals[0][0], now))
    return total(subtract(intervals, planned)), total(intersect(intervals, planned))
