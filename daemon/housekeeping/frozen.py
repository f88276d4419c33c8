"""A month's service report kept as it stood: the report model to JSON and back, exactly (floats round-trip).

Housekeeping freezes every month some days after it ends, before any row behind it may be pruned; from then
on the report of that month is the frozen one, whatever was pruned since (daemon/report/produce.py).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from daemon.report.model import Coverage, DayAvailability, DrillResult, Report, ServiceReport, SlaFigures
from daemon.storage import rollups
from daemon.storage.sql import Sql

FREEZE_AFTER = 7 * 86400.0
"""A month is frozen this long after it ends: late resolutions of its incidents are in by then."""


def to_json(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), separators=(",", ":"), sort_keys=True)


def from_json(text: str, *, now: float) -> Report:
    """The frozen report, generated_at `now` (the time it is served, as a built one would say)."""
    doc: dict[str, Any] = json.loads(text)
    services = tuple(
        ServiceReport(
            **{
                **s,
                "daily": tuple(DayAvailability(**d) for d in s["daily"]),
                "sla": tuple(SlaFigures(**f) for f in s["sla"]),
                "drills": tuple(DrillResult(**d) for d in s["drills"]),
            }
        )
        for s in doc["services"]
    )
    return Report(
        **{**doc, "generated_at": now, "services": services, "coverage": Coverage(**doc["coverage"])},
    )


def frozen_report(sql: Sql, period: str, time_zone: str, *, now: float, service: str | None) -> Report | None:
    """The frozen report of a month (one service's section only when `service` is given), or None."""
    body = rollups.frozen_month(sql, period, time_zone)
    if body is None:
        return None
    report = from_json(body, now=now)
    if service is None:
        return report
    return dataclasses.replace(
        report, services=tuple(s for s in report.services if s.service == service), serviceless_changes={}
    )
