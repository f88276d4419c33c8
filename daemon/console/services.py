"""The console's services page: the catalogue with its targets, availability and error budget, maintenance and
drills, and the open incidents of each service.

Every figure is one the daemon already states elsewhere: availability and budget are the tracker's (the same
numbers as the `itsmd_service_*` metrics), targets and windows the catalogue's (as GET /api/v1/services), drills
the runner's and the schedule's (as GET /api/v1/drills). Nothing is recomputed here but the presentation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from daemon.api import keys
from daemon.availability.episodes import metric_service
from daemon.availability.tracker import AvailabilityTracker, window_label
from daemon.catalogue.services import Catalogue, Service
from daemon.console.auth import require_session
from daemon.console.render import page
from daemon.durations import format_duration
from daemon.storage.incidents import open_by_service

Json = dict[str, Any]
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


def _when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ratio(value: float) -> str:
    return f"{value * 100:.3f} %"


def _availability(tracker: AvailabilityTracker | None, service: str, now: float) -> list[Json]:
    if tracker is None:
        return []
    goal = tracker.objective(service)
    out = []
    for length in tracker.windows:
        figures = tracker.ledger.window(service, now, length)
        budget = figures.error_budget_remaining_ratio(goal)
        out.append(
            {
                "window": window_label(length),
                "availability": _ratio(figures.availability_ratio),
                "met": figures.availability_ratio >= goal,
                "budget": _ratio(budget),
                "exhausted": budget <= 0,
                "downtime": format_duration(figures.unplanned_downtime_seconds),
            }
        )
    return out


def _maintenance(service: Service, now: float) -> Json:
    current = []
    upcoming = []
    for window in service.maintenance:
        covering = window.covering(now)
        if covering is not None:
            current.append({"name": window.name, "start": _when(covering[0]), "end": _when(covering[1])})
        following = window.next_window(now)
        if following is not None:
            upcoming.append(
                (following[0], {"name": window.name, "start": _when(following[0]), "end": _when(following[1])})
            )
    upcoming.sort(key=lambda pair: pair[0])
    return {"now": current, "next": upcoming[0][1] if upcoming else None, "count": len(service.maintenance)}


def _drills(request: web.Request, service: str) -> list[Json]:
    runner = request.app.get(keys.DRILLS)
    schedule = request.app.get(keys.DRILL_SCHEDULE)
    if runner is None:
        return []
    out = []
    for drill in sorted(runner.drills.values(), key=lambda d: d.name):
        if drill.service != service:
            continue
        last = runner.last.get(drill.name)
        next_run = schedule.next_run(drill.name) if schedule is not None and drill.enabled else None
        out.append(
            {
                "name": drill.name,
                "enabled": drill.enabled,
                "schedule": drill.schedule,
                "rto": format_duration(drill.rto),
                "last": None
                if last is None
                else {"outcome": last.outcome.value, "at": _when(last.started_at), "reason": last.reason},
                "next": _when(next_run.timestamp()) if next_run is not None else "",
            }
        )
    return out


def _targets(catalogue: Catalogue, service: Service) -> list[Json]:
    out = []
    for priority in PRIORITIES:
        target = catalogue.target(service, priority)
        out.append(
            {
                "priority": priority,
                "respond": format_duration(target.respond) if target.respond is not None else "by agreement",
                "resolve": format_duration(target.resolve) if target.resolve is not None else "by agreement",
            }
        )
    return out


def service_views(request: web.Request, open_counts: dict[str, int], now: float) -> list[Json]:
    from daemon.app import AVAILABILITY  # noqa: PLC0415 - daemon.app imports the console

    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    tracker = request.app.get(AVAILABILITY)
    # Incidents of services no longer listed count under the default service, as the metrics do.
    counts: dict[str, int] = {}
    for name, count in open_counts.items():
        shown = metric_service(catalogue, name)
        counts[shown] = counts.get(shown, 0) + count
    out = []
    for index, name in enumerate(catalogue.names(), 1):
        service = catalogue.get(name)
        out.append(
            {
                "anchor": f"svc-{index}",
                "name": name,
                "description": service.description,
                "owner": service.owner,
                "team": service.team,
                "tier": service.tier,
                "default": name == catalogue.default_service,
                "objective": _ratio(catalogue.objective(service)),
                "targets": _targets(catalogue, service),
                "availability": _availability(tracker, name, now),
                "open": counts.get(name, 0),
                "incidents_link": "/incidents?" + urlencode({"service": name}),
                "maintenance": _maintenance(service, now),
                "drills": _drills(request, name),
            }
        )
    return out


async def list_services(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    open_counts: dict[str, int] = await request.app[keys.READER].run(open_by_service)
    now = request.app[keys.CLOCK].now()
    services = service_views(request, open_counts, now)
    windows = [a["window"] for a in services[0]["availability"]] if services else []
    return page(
        request, "services.html.j2", session, title="Services", services=services, windows=windows, now=_when(now)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/services", list_services, name="console-services")
