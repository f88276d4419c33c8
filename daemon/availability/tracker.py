"""Availability per catalogue service, kept live from the correlator's events and restored from the store.

The tracker follows each incident's open/reopen/priority/resolve events and feeds the Ledger the episodes
that count as downtime (episodes.py holds the definition; this is its incremental form). At start it reads
the daily rollups (one sum per service) and the incidents with downtime since the rollups end (open ones,
and those resolved within about the longest window), never the years of history behind them; so the
figures after a restart are those of the stored incidents and rollups: no downtime is kept only in memory.
The collector computes everything at scrape time from the ledger (no database I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.availability.episodes import (
    History,
    MaintenanceCache,
    episodes_of,
    metric_service,
    policy_counts,
)
from daemon.availability.ledger import Episode, Ledger
from daemon.catalogue.services import Catalogue
from daemon.clock import Clock
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.durations import format_duration
from daemon.storage import rollups
from daemon.storage.availability import load_histories
from daemon.storage.sql import Sql


@dataclass
class _Incident:
    service: str
    labels: Mapping[str, str]
    priority: str
    start: float | None
    """Start of the current episode (open or reopen); None while resolved."""
    resolved_at: float | None = None


class AvailabilityTracker:
    def __init__(self, catalogue: Callable[[], Catalogue], clock: Clock, windows: Sequence[float]) -> None:
        self._catalogue = catalogue
        self._clock = clock
        self.windows = tuple(sorted(windows))
        keep = max(self.windows, default=86400.0)
        self.maintenance = MaintenanceCache(catalogue, lookback=keep)
        self.ledger = Ledger(self.maintenance, keep=keep)
        self._keep = keep
        self._incidents: dict[int, _Incident] = {}
        self.rows_read = 0
        """Rows the last load() read (about: marks, incidents, rollup sums): bounded by what is active, not by
        the history kept."""

    # -- start ----------------------------------------------------------------------------------------

    def restore(
        self,
        histories: Iterable[History],
        now: float,
        *,
        folded: Mapping[str, tuple[float, float]] | None = None,
        since: float | None = None,
    ) -> None:
        """`folded`: downtime per service rolled up before `since`; episodes are counted from `since` on."""
        catalogue = self._catalogue()
        episodes: list[Episode | None] = []
        for service, (unplanned, planned) in (folded or {}).items():
            self.ledger.fold_in(metric_service(catalogue, service), unplanned, planned, since or float("-inf"))
        for h in histories:
            service = metric_service(catalogue, h.service)
            h.service = service
            episodes.extend(_from(e, since) for e in episodes_of(h, policy_counts(catalogue, service)))
            state = _Incident(service, h.labels, "", None)
            for mark in h.marks:
                if mark.priority is not None:
                    state.priority = mark.priority
                if mark.kind in ("opened", "reopened") and state.start is None:
                    state.start, state.resolved_at = mark.at, None
                elif mark.kind == "resolved":
                    state.start, state.resolved_at = None, mark.at
            if state.start is not None or (state.resolved_at is not None and state.resolved_at > now - self._keep):
                self._incidents[h.incident_id] = state
        self.ledger.restore([e for e in episodes if e is not None], now)

    def load(self, sql: Sql, now: float) -> None:
        """Read the rollups and what is active since they end (call before the writer starts, in a thread).
        Before the first rollup (a new store, or the first start of this version) that is all the history."""
        since = rollups.mark(sql, rollups.AVAILABILITY)
        folded = rollups.folded_totals(sql, since) if since is not None else {}
        histories = load_histories(sql, since=since)
        # Timeline marks, incidents and per-service rollup sums: bounded by what is active, not the years kept.
        self.rows_read = sum(len(h.marks) for h in histories) + len(histories) + len(folded)
        self.restore(histories, now, folded=folded, since=since)

    # -- events ---------------------------------------------------------------------------------------

    def on_incident_event(self, event: IncidentEvent) -> None:
        kind = event.kind
        if kind is IncidentEventKind.OPENED:
            service = metric_service(self._catalogue(), event.service)
            self._incidents[event.incident_id] = _Incident(service, dict(event.labels), event.priority, event.at)
            self._count(event.incident_id)
            return
        state = self._incidents.get(event.incident_id)
        if state is None:
            return
        if kind is IncidentEventKind.REOPENED:
            state.start, state.resolved_at, state.priority = event.at, None, event.priority
            self._count(event.incident_id)
        elif kind is IncidentEventKind.PRIORITY_RAISED:
            state.priority = event.priority
            self._count(event.incident_id)
        elif kind is IncidentEventKind.RESOLVED:
            # The outage ends when the incident ended, not when its end was noticed (an expiry, a flap hold).
            ended = event.ended_at if event.ended_at is not None else event.at
            self.ledger.ended(state.service, event.incident_id, ended)
            state.start, state.resolved_at = None, ended

    def _count(self, incident_id: int) -> None:
        state = self._incidents[incident_id]
        if state.start is None or self.ledger.is_open(state.service, incident_id):
            return
        if policy_counts(self._catalogue(), state.service)(state.priority, state.labels):
            self.ledger.started(state.service, incident_id, state.start)

    def compact(self, now: float) -> None:
        """Fold old outages and forget incidents resolved longer ago than any reopen (from the sweep)."""
        self.ledger.compact(now)
        cut = now - self._keep
        for incident_id in [i for i, s in self._incidents.items() if s.resolved_at is not None and s.resolved_at < cut]:
            del self._incidents[incident_id]

    # -- reads ----------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock.now()

    def services(self) -> list[str]:
        return sorted(set(self._catalogue().names()) | set(self.ledger.services()))

    def objective(self, service: str) -> float:
        catalogue = self._catalogue()
        return catalogue.objective(catalogue.get(metric_service(catalogue, service)))


def _from(e: Episode, since: float | None) -> Episode | None:
    """The part of an episode at or after `since` (what came before is in the daily rollups)."""
    if since is None or e.start >= since:
        return e
    if e.end is not None and e.end <= since:
        return None
    return Episode(e.service, e.incident_id, since, e.end)


def window_label(seconds: float) -> str:
    return format_duration(seconds)


class AvailabilityCollector(Collector):
    def __init__(self, tracker: AvailabilityTracker) -> None:
        self._tracker = tracker

    def collect(self) -> Iterable[Metric]:
        t = self._tracker
        now = t.now()
        downtime = CounterMetricFamily(
            "itsmd_service_downtime_seconds",
            "Time incidents that count as downtime were open; planned=true inside maintenance windows.",
            labels=["service", "planned"],
        )
        ratio = GaugeMetricFamily(
            "itsmd_service_availability_ratio",
            "Agreed service time (maintenance excluded) not in unplanned downtime, over the trailing window.",
            labels=["service", "window"],
        )
        objective = GaugeMetricFamily(
            "itsmd_service_availability_objective_ratio",
            "Availability objective of the service (catalogue).",
            labels=["service"],
        )
        budget = GaugeMetricFamily(
            "itsmd_service_error_budget_remaining_ratio",
            "Share of the window's error budget not yet spent; below 0 when overspent.",
            labels=["service", "window"],
        )
        for service in t.services():
            unplanned, planned = t.ledger.downtime(service, now)
            downtime.add_metric([service, "false"], unplanned)
            downtime.add_metric([service, "true"], planned)
            goal = t.objective(service)
            objective.add_metric([service], goal)
            for length in t.windows:
                figures = t.ledger.window(service, now, length)
                label = window_label(length)
                ratio.add_metric([service, label], figures.availability_ratio)
                budget.add_metric([service, label], figures.error_budget_remaining_ratio(goal))
        yield downtime
        yield ratio
        yield objective
        yield budget
