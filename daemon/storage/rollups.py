"""Rollups: what keeps past availability and past service reports exact once the rows behind them are pruned.

    availability_daily  downtime seconds (unplanned, planned) per service and UTC day, folded from episodes
    rollup_marks        how far a rollup reaches: every instant before until_at is in it
    report_months       a month's service report as it stood before any of its rows could be pruned

The availability tracker starts from these plus the incidents active since the mark (`histories`), so its
start-up reads what is active and a bounded tail, not the years kept. Portable SQL; JSON in TEXT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from daemon.availability.episodes import KINDS, History, Mark
from daemon.storage.database import Statement
from daemon.storage.sql import Sql

AVAILABILITY = "availability_daily"
"""The rollup_marks name of the daily availability rollup."""

SET_MARK = Statement(
    "INSERT INTO rollup_marks (name, until_at) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET until_at = excluded.until_at",
    order=880,
)
SET_DAY = Statement(
    "INSERT INTO availability_daily (service, day_start, unplanned_seconds, planned_seconds) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (service, day_start) DO UPDATE SET unplanned_seconds = excluded.unplanned_seconds, "
    "planned_seconds = excluded.planned_seconds",
    order=881,
)
FREEZE_MONTH = Statement(
    "INSERT INTO report_months (period, time_zone, frozen_at, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (period, time_zone) DO NOTHING",
    order=882,
)


def mark(sql: Sql, name: str) -> float | None:
    value = sql.scalar("SELECT until_at FROM rollup_marks WHERE name = ?", (name,))
    return float(value) if value is not None else None


def folded_totals(sql: Sql, until: float) -> dict[str, tuple[float, float]]:
    """Unplanned and planned downtime per service of the days rolled up before `until` (one row per service)."""
    return {
        r["service"]: (float(r["unplanned"]), float(r["planned"]))
        for r in sql.rows(
            "SELECT service, sum(unplanned_seconds) AS unplanned, sum(planned_seconds) AS planned "
            "FROM availability_daily WHERE day_start < ? GROUP BY service",
            (until,),
        )
    }


def days(sql: Sql, service: str, start: float, end: float) -> list[tuple[float, float, float]]:
    """(day_start, unplanned, planned) of one service's rolled-up days in [start, end), oldest first."""
    return [
        (float(r["day_start"]), float(r["unplanned_seconds"]), float(r["planned_seconds"]))
        for r in sql.rows(
            "SELECT day_start, unplanned_seconds, planned_seconds FROM availability_daily "
            "WHERE service = ? AND day_start >= ? AND day_start < ? ORDER BY day_start",
            (service, start, end),
        )
    ]


@dataclass
class Histories:
    histories: list[History] = field(default_factory=list)
    rows_read: int = 0
    """Rows the read returned (timeline marks and opener labels): what start-up cost, for the soak test."""


def histories(sql: Sql, *, since: float | None = None, until: float | None = None) -> Histories:
    """The marks (oldest first) and opener labels of every incident with an episode ending at or after `since`
    (open, or resolved since then; None: all of them), ignoring marks after `until`.

    The same reading as daemon.availability.episodes.load_histories, bounded: an incident resolved before
    `since` has all its downtime in the daily rollups."""
    out = Histories()
    found: dict[int, History] = {}
    openers: dict[int, str] = {}
    kinds = ",".join("?" * len(KINDS))
    bound = "" if since is None else "AND (i.resolved_at IS NULL OR i.resolved_at >= ?) "
    params: list[object] = [*KINDS, until if until is not None else float("inf")]
    if since is not None:
        params.append(since)
    rows = sql.rows(
        "SELECT t.incident_id, i.service, t.at, t.kind, t.detail FROM timeline t "
        f"JOIN incidents i ON i.id = t.incident_id WHERE t.kind IN ({kinds}) AND t.at <= ? {bound}"
        "ORDER BY t.incident_id, t.id",
        params,
    )
    out.rows_read += len(rows)
    for r in rows:
        incident_id, kind, at = int(r["incident_id"]), r["kind"], float(r["at"])
        h = found.get(incident_id)
        if h is None:
            h = found[incident_id] = History(incident_id, r["service"])
        data = json.loads(r["detail"])
        priority = data.get("priority") if kind == "opened" else data.get("to") if kind == "priority_raised" else None
        ended = data.get("ended_at") if kind == "resolved" else None
        # Recorded at `at`, ended earlier: after an expiry or a flapping hold.
        when = float(ended) if isinstance(ended, int | float) and ended <= at else at
        h.marks.append(Mark(when, kind, priority if isinstance(priority, str) else None))
        if kind == "opened" and isinstance(data.get("alert"), str):
            openers[incident_id] = data["alert"]
    by_fingerprint: dict[str, list[int]] = {}
    for incident_id, fingerprint in openers.items():
        by_fingerprint.setdefault(fingerprint, []).append(incident_id)
    fingerprints = list(by_fingerprint)
    for i in range(0, len(fingerprints), 500):
        chunk = fingerprints[i : i + 500]
        labels = sql.rows(
            f"SELECT fingerprint, labels FROM alerts WHERE fingerprint IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        out.rows_read += len(labels)
        for r in labels:
            for incident_id in by_fingerprint[r["fingerprint"]]:
                found[incident_id].labels = json.loads(r["labels"])
    out.histories = list(found.values())
    return out


def first_incident_at(sql: Sql) -> float | None:
    value = sql.scalar("SELECT min(opened_at) FROM incidents")
    return float(value) if value is not None else None


def frozen_month(sql: Sql, period: str, time_zone: str) -> str | None:
    """The frozen report body (JSON) of a month in a time zone, or None."""
    value = sql.scalar("SELECT body FROM report_months WHERE period = ? AND time_zone = ?", (period, time_zone))
    return str(value) if value is not None else None


def frozen_months(sql: Sql, time_zone: str) -> set[str]:
    return {r["period"] for r in sql.rows("SELECT period FROM report_months WHERE time_zone = ?", (time_zone,))}
