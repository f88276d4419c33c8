"""Rollups: what keeps past availability and past service reports exact once the rows behind them are pruned.

    availability_daily  downtime seconds (unplanned, planned) per service and UTC day, folded from episodes
    rollup_marks        how far a rollup reaches: every instant before until_at is in it
    report_months       a month's service report as it stood before any of its rows could be pruned

The availability tracker starts from these plus the incidents active since the mark
(daemon.storage.availability.load_histories with `since`), so its start-up reads what is active and a
bounded tail, not the years kept. Portable SQL; JSON in TEXT.
"""

from __future__ import annotations

from daemon.storage.database import Statement
from daemon.storage.sql import Sql, has_table

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


def first_incident_at(sql: Sql) -> float | None:
    value = sql.scalar("SELECT min(opened_at) FROM incidents")
    return float(value) if value is not None else None


def frozen_month(sql: Sql, period: str, time_zone: str) -> str | None:
    """The frozen report body (JSON) of a month in a time zone, or None (also on a store of a schema before
    the table: nothing was frozen there)."""
    if not has_table(sql, "report_months"):
        return None
    value = sql.scalar("SELECT body FROM report_months WHERE period = ? AND time_zone = ?", (period, time_zone))
    return str(value) if value is not None else None


def frozen_months(sql: Sql, time_zone: str) -> set[str]:
    return {r["period"] for r in sql.rows("SELECT period FROM report_months WHERE time_zone = ?", (time_zone,))}
