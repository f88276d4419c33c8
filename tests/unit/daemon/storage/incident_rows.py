"""Incident, timeline, alert and problem rows written with plain statements, for the tests of the record modules
that read them (availability, reports) without depending on how the correlator writes them."""

from __future__ import annotations

import json
from typing import Any

from daemon.storage.database import Statement

INCIDENT = Statement(
    "INSERT INTO incidents (id, key, service, title, status, opened_at, resolved_at, reopen_count, priority, "
    "acknowledged_at, sla) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    order=1,
)
TIMELINE = Statement("INSERT INTO timeline (incident_id, at, kind, detail) VALUES (?,?,?,?)", order=2)
ALERT = Statement(
    "INSERT INTO alerts (fingerprint, labels, annotations, status, starts_at, generator_url, sources, first_seen, "
    "last_seen, times_seen, state_changes) VALUES (?,?,'{}','firing',?,'',1,?,?,1,1)",
    order=0,
)
PROBLEM = Statement(
    "INSERT INTO problems (id, signature, service, title, status, opened_at, updated_at, root_cause, workaround) "
    "VALUES (?,?,?,'t',?,?,?,'','')",
    order=3,
)


def incident(
    incident_id: int,
    service: str,
    opened: float,
    *,
    status: str = "open",
    priority: str = "P1",
    resolved: float | None = None,
    acknowledged: float | None = None,
    sla: dict[str, Any] | None = None,
) -> tuple[Statement, tuple[Any, ...]]:
    row = (incident_id, f"k{incident_id}", service, "title", status, opened, resolved, 0, priority, acknowledged)
    return INCIDENT, (*row, json.dumps(sla or {}))


def mark(incident_id: int, at: float, kind: str, **detail: Any) -> tuple[Statement, tuple[Any, ...]]:
    return TIMELINE, (incident_id, at, kind, json.dumps(detail))


def alert(fingerprint: str, labels: dict[str, str], at: float) -> tuple[Statement, tuple[Any, ...]]:
    return ALERT, (fingerprint, json.dumps(labels), at, at, at)


def problem(problem_id: int, service: str, status: str, opened: float) -> tuple[Statement, tuple[Any, ...]]:
    return PROBLEM, (problem_id, f"s{problem_id}", service, status, opened, opened)
