"""Which incident time is downtime, from the incident history the store holds.

The one definition, shared by the live tracker, its restart and the service report:
- an incident's history is a sequence of marks: opened, reopened, priority_raised, resolved (the timeline
  kinds of the same names, or the correlator's events while running);
- an episode runs from an open (or reopen) to the next resolve, or is still open; a resolve ends it at the
  incident's recorded end (`ended_at` of the resolved entry: when its last alert ended, which an expiry
  estimates), not at the moment the resolution was recorded;
- it counts as downtime when the service's downtime policy (catalogue `downtime:`) accepts the incident's
  priority as it stands at the episode's end (or now, while open) and the labels of the alert that opened
  the incident. Priority only ever rises while an incident is active, so a raise into the policy's list makes
  the whole episode count from its start: the outage began when the incident opened, the impact was only
  understood later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from daemon.availability.intervals import Interval, clip, merge
from daemon.availability.ledger import Episode
from daemon.catalogue.services import Catalogue
from daemon.catalogue.windows import MAX_STEPS, MaintenanceWindow

KINDS = ("opened", "reopened", "priority_raised", "resolved")


@dataclass(frozen=True, slots=True)
class Mark:
    at: float
    kind: str
    priority: str | None = None
    """opened: the priority; priority_raised: the new one."""


@dataclass
class History:
    incident_id: int
    service: str
    labels: Mapping[str, str] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)


def episodes_of(history: History, counts: Callable[[str, Mapping[str, str]], bool]) -> list[Episode]:
    out: list[Episode] = []
    priority = ""
    start: float | None = None
    for mark in history.marks:
        if mark.priority is not None:
            priority = mark.priority
        if mark.kind in ("opened", "reopened") and start is None:
            start = mark.at
        elif mark.kind == "resolved" and start is not None:
            if counts(priority, history.labels):
                out.append(Episode(history.service, history.incident_id, start, mark.at))
            start = None
    if start is not None and counts(priority, history.labels):
        out.append(Episode(history.service, history.incident_id, start, None))
    return out


def metric_service(catalogue: Catalogue, service: str) -> str:
    """Services dropped from the catalogue count under the default service, as the incident metrics do."""
    return service if service in catalogue.names() else catalogue.default_service


def policy_counts(catalogue: Catalogue, service: str) -> Callable[[str, Mapping[str, str]], bool]:
    return catalogue.get(metric_service(catalogue, service)).downtime.counts


def stored_episodes(histories: Iterable[History], catalogue: Catalogue) -> list[Episode]:
    """The downtime episodes of stored histories (daemon.storage.availability.load_histories), services mapped
    as the metrics map them."""
    out: list[Episode] = []
    for h in histories:
        service = metric_service(catalogue, h.service)
        h.service = service
        out.extend(episodes_of(h, policy_counts(catalogue, service)))
    return out


def maintenance_intervals(windows: Sequence[MaintenanceWindow], start: float, end: float) -> list[Interval]:
    """The maintenance windows overlapping [start, end), clipped to it and merged."""
    found: list[Interval] = []
    for w in windows:
        cursor = start - w.length
        for _ in range(MAX_STEPS):
            window = w.next_window(cursor)
            if window is None or window[0] >= end:
                break
            found.append(window)
            cursor = window[0] + 1.0
    return merge(clip(found, start, end))


class MaintenanceCache:
    """Maintenance intervals per service, computed once for a span around now and reused by every scrape
    (finding cron matches is slow); recomputed when asked outside the span or for a new catalogue."""

    MARGIN = 86400.0

    def __init__(self, catalogue: Callable[[], Catalogue], *, lookback: float = 0.0) -> None:
        """`lookback`: how far before the asked end a recomputed span starts (the longest window)."""
        self._catalogue = catalogue
        self._lookback = lookback
        self._seen: Catalogue | None = None
        self._spans: dict[str, tuple[float, float, list[Interval]]] = {}

    def __call__(self, service: str, start: float, end: float) -> list[Interval]:
        catalogue = self._catalogue()
        if catalogue is not self._seen:
            self._seen, self._spans = catalogue, {}
        span = self._spans.get(service)
        if span is None or start < span[0] or end > span[1]:
            low = min(start, end - self._lookback)
            high = end + self.MARGIN
            windows = catalogue.get(metric_service(catalogue, service)).maintenance
            span = self._spans[service] = (low, high, maintenance_intervals(windows, low, high))
        return clip(span[2], start, end)


def stored_lookup(catalogue: Catalogue) -> Callable[[str, float, float], list[Interval]]:
    return MaintenanceCache(lambda: catalogue)


def counted_services(catalogue: Catalogue, extra: Iterable[str]) -> list[str]:
    return sorted(set(catalogue.names()) | set(extra))
