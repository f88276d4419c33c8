"""The reads of the service report (daemon/report): the store's first record and the incidents, problems and
changes of a period. Drill results come from daemon.storage.drills, downtime from daemon.storage.availability."""

from __future__ import annotations

from daemon.storage.sql import Row, Sql

# Every table whose rows carry the instant something was recorded; the earliest of them is the first record.
_FIRST = (
    "SELECT MIN(t) AS first_at FROM ("
    "SELECT MIN(first_seen) AS t FROM alerts UNION ALL SELECT MIN(opened_at) FROM incidents "
    "UNION ALL SELECT MIN(at) FROM timeline UNION ALL SELECT MIN(at) FROM audit_events "
    "UNION ALL SELECT MIN(created_at) FROM runs UNION ALL SELECT MIN(started_at) FROM drill_runs) AS firsts"
)


def first_record(sql: Sql) -> float | None:
    """The earliest instant the store recorded anything; None for an empty store."""
    at = sql.scalar(_FIRST)
    return float(at) if at is not None else None


def incidents_opened(sql: Sql, start: float, end: float) -> list[Row]:
    """Incidents opened in [start, end): service, priority, opened_at, acknowledged_at, resolved_at, status,
    sla (JSON text) and resolved_detail (JSON text of the latest `resolved` timeline entry, or None)."""
    return sql.rows(
        "SELECT i.service, i.priority, i.opened_at, i.acknowledged_at, i.resolved_at, i.status, i.sla, "
        "(SELECT t.detail FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'resolved' "
        "ORDER BY t.id DESC LIMIT 1) AS resolved_detail FROM incidents i WHERE i.opened_at >= ? AND i.opened_at < ?",
        (start, end),
    )


def problems_opened_before(sql: Sql, end: float) -> list[Row]:
    """Problems opened before `end`: service, opened_at, status."""
    return sql.rows("SELECT service, opened_at, status FROM problems WHERE opened_at < ?", (end,))


def live_changes(sql: Sql, start: float, end: float) -> list[Row]:
    """Live changes created in [start, end): service, outcome, and causing (truthy when an incident is linked to
    it as a suspected effect)."""
    return sql.rows(
        "SELECT c.service, c.outcome, EXISTS (SELECT 1 FROM change_incidents ci WHERE ci.change_id = c.id) AS causing "
        "FROM changes c WHERE c.created_at >= ? AND c.created_at < ? AND c.mode = 'live'",
        (start, end),
    )
