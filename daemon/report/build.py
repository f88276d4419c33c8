"""Build a service report (ISO/IEC 20000-1 9.4) for one period from the store alone.

Reads through a reader's Sql (daemon.storage.reports and the record modules it names), so it works with or
without the daemon running.
Availability uses the same episodes and window arithmetic as the live metrics (availability/episodes.py,
figures.py): the report of a month and itsmd_service_availability_ratio over that month agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from daemon.availability.episodes import metric_service, stored_episodes, stored_lookup
from daemon.availability.figures import WindowFigures, window_figures
from daemon.availability.intervals import Interval
from daemon.catalogue.services import Catalogue
from daemon.changes.model import NO_SERVICE
from daemon.correlate.sla import RESOLVE, RESPOND
from daemon.errors import NotFound
from daemon.report.coverage import coverage
from daemon.report.model import PRIORITIES, DayAvailability, DrillResult, Report, ServiceReport, SlaFigures
from daemon.report.period import Period
from daemon.storage import reports as store
from daemon.storage.availability import load_histories
from daemon.storage.sql import Sql

OPEN_CHANGE = "in_progress"
"""Outcome shown for a change that has none yet."""


@dataclass
class _Counts:
    by_priority: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRIORITIES, 0))
    ack: list[float] = field(default_factory=list)
    repair: list[float] = field(default_factory=list)
    estimated_ends: int = 0
    sla: dict[str, list[int]] = field(default_factory=lambda: {RESPOND: [0, 0], RESOLVE: [0, 0]})
    problems_opened: int = 0
    known_errors: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    causing: int = 0


def build_report(
    sql: Sql,
    catalogue: Catalogue,
    period: Period,
    *,
    now: float,
    time_zone: str,
    service: str | None = None,
    drills: Mapping[str, Sequence[DrillResult]] | None = None,
) -> Report:
    names = catalogue.names()
    if service is not None and service not in names:
        raise NotFound("unknown_service", f"no service {service!r} in the catalogue")
    chosen = [service] if service is not None else sorted(names)
    covered = coverage(period, now=now, first=store.first_record(sql))
    until = min(period.end, now)
    outages: dict[str, list[Interval]] = {}
    for e in stored_episodes(load_histories(sql, until=until), catalogue):
        outages.setdefault(e.service, []).append((e.start, e.end if e.end is not None else until))
    counts = {name: _Counts() for name in chosen}
    # Serviceless changes are counted under "none", the metrics' label, whichever services are chosen.
    counts.setdefault(NO_SERVICE, _Counts())
    _incidents(sql, catalogue, period, counts)
    _problems(sql, catalogue, period, counts)
    _changes(sql, catalogue, period, counts)
    maintenance = stored_lookup(catalogue)
    drills = drills or {}
    services = []
    for name in chosen:
        c = counts[name]
        objective = catalogue.objective(catalogue.get(name))
        down = outages.get(name, [])
        whole: WindowFigures | None = None
        daily: list[DayAvailability] = []
        if covered.start is not None and covered.end is not None:
            lo, hi = covered.start, covered.end
            whole = window_figures(down, maintenance(name, lo, hi), lo, hi)
            for day, start, end in period.days:
                # A day counts only for the part of it the span covers (today so far, the first record's day).
                a, b = max(start, lo), min(end, hi)
                if a < b:
                    ratio = window_figures(down, maintenance(name, a, b), a, b).availability_ratio
                    daily.append(DayAvailability(day, ratio, partial=(a, b) != (start, end)))
        services.append(
            ServiceReport(
                service=name,
                owner=catalogue.get(name).owner,
                objective_ratio=objective,
                availability_ratio=whole.availability_ratio if whole else None,
                unplanned_downtime_seconds=whole.unplanned_downtime_seconds if whole else None,
                planned_downtime_seconds=whole.planned_downtime_seconds if whole else None,
                error_budget_remaining_ratio=whole.error_budget_remaining_ratio(objective) if whole else None,
                error_budget_seconds=(1.0 - objective) * whole.agreed_seconds if whole else None,
                daily=tuple(daily),
                incidents_by_priority=c.by_priority,
                mtta_seconds=_mean(c.ack),
                mttr_seconds=_mean(c.repair),
                sla=tuple(SlaFigures(t, met, breached) for t, (met, breached) in c.sla.items()),
                problems_opened=c.problems_opened,
                known_errors=c.known_errors,
                changes_by_outcome=dict(sorted(c.changes.items())),
                changes_causing_incidents=c.causing,
                drills=tuple(sorted(drills.get(name, ()), key=lambda d: d.at)),
                estimated_ends=c.estimated_ends,
            )
        )
    serviceless = dict(sorted(counts[NO_SERVICE].changes.items())) if service is None else {}
    return Report(period.name, period.start, period.end, now, time_zone, tuple(services), covered, serviceless)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _incidents(sql: Sql, catalogue: Catalogue, period: Period, counts: dict[str, _Counts]) -> None:
    """Incidents opened in the period: by priority, time to acknowledge and to resolve, SLA targets."""
    for r in store.incidents_opened(sql, period.start, period.end):
        c = counts.get(metric_service(catalogue, r["service"]))
        if c is None:
            continue
        priority, status = r["priority"], r["status"]
        opened, acked, resolved = r["opened_at"], r["acknowledged_at"], r["resolved_at"]
        c.by_priority[priority] = c.by_priority.get(priority, 0) + 1
        if acked is not None:
            c.ack.append(acked - opened)
        if resolved is not None:
            c.repair.append(resolved - opened)
            detail = r["resolved_detail"]
            c.estimated_ends += 1 if detail is not None and json.loads(detail).get("end_estimated") else 0
        clock = json.loads(r["sla"])
        breaches = set(clock.get("breaches", []))
        finished = resolved is not None or status == "closed"
        for target, done in ((RESPOND, acked is not None or finished), (RESOLVE, finished)):
            if clock.get(f"{target}_target") is None:
                continue
            if target in breaches:
                c.sla[target][1] += 1
            elif done:
                c.sla[target][0] += 1


def _problems(sql: Sql, catalogue: Catalogue, period: Period, counts: dict[str, _Counts]) -> None:
    """Problems opened in the period, and the known errors on record at its end."""
    for r in store.problems_opened_before(sql, period.end):
        c = counts.get(metric_service(catalogue, r["service"]))
        if c is None:
            continue
        if r["opened_at"] >= period.start:
            c.problems_opened += 1
        if r["status"] == "known_error":
            c.known_errors += 1


def _changes(sql: Sql, catalogue: Catalogue, period: Period, counts: dict[str, _Counts]) -> None:
    """Changes created in the period by outcome (drills and dry runs are not changes to the service), and
    those linked to an incident they are suspected of causing."""
    for r in store.live_changes(sql, period.start, period.end):
        service = r["service"]
        c = counts.get(metric_service(catalogue, service) if service else NO_SERVICE)
        if c is None:
            continue
        key = r["outcome"] or OPEN_CHANGE
        c.changes[key] = c.changes.get(key, 0) + 1
        if r["causing"]:
            c.causing += 1
