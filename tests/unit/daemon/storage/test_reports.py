"""The service report's reads through a backend: the first record and a period's incidents, problems, changes."""

from __future__ import annotations

import json

from daemon.changes.model import Change, ChangeOutcome, ChangeType
from daemon.storage import changes, reports
from daemon.storage.sql import Backend
from tests.unit.daemon.storage.backends_fixture import write
from tests.unit.daemon.storage.incident_rows import alert, incident, mark, problem


def _change(change_id: int, created: float, *, mode: str = "live", service: str | None = "api") -> Change:
    return Change(
        id=change_id,
        run_id=change_id,
        runbook="restart",
        runbook_version="v1",
        mode=mode,
        change_type=ChangeType.STANDARD,
        risk="low",
        service=service,
        incident_id=None,
        requested_by="alice",
        trigger="api",
        created_at=created,
        run_status="succeeded",
        outcome=ChangeOutcome.SUCCESSFUL if change_id % 2 else None,
    )


def test_the_first_record_is_the_earliest_of_any_table(sql_backend: Backend) -> None:
    assert reports.first_record(sql_backend.primary) is None
    write(sql_backend, incident(1, "api", 30.0), alert("fp", {}, 20.0), mark(1, 25.0, "opened"))
    assert reports.first_record(sql_backend.primary) == 20.0


def test_incidents_opened_in_a_period_with_their_latest_resolution(sql_backend: Backend) -> None:
    sla = {"respond_target": 60, "breaches": ["resolve"]}
    write(
        sql_backend,
        incident(1, "api", 10.0, status="resolved", resolved=50.0, acknowledged=12.0, sla=sla),
        incident(2, "db", 20.0),
        incident(3, "api", 100.0),
        mark(1, 30.0, "resolved", end_estimated=True),
        mark(1, 40.0, "reopened"),
        mark(1, 50.0, "resolved", end_estimated=False),
    )
    rows = sorted(reports.incidents_opened(sql_backend.primary, 0.0, 100.0), key=lambda r: r["opened_at"])
    assert [(r["service"], r["priority"], r["status"]) for r in rows] == [
        ("api", "P1", "resolved"),
        ("db", "P1", "open"),
    ]
    first, second = rows
    assert (first["acknowledged_at"], first["resolved_at"], json.loads(first["sla"])) == (12.0, 50.0, sla)
    assert json.loads(first["resolved_detail"]) == {"end_estimated": False}
    assert second["resolved_detail"] is None and second["resolved_at"] is None


def test_problems_and_live_changes_of_a_period(sql_backend: Backend) -> None:
    write(
        sql_backend,
        problem(1, "api", "known_error", 10.0),
        problem(2, "db", "candidate", 200.0),
        incident(5, "api", 10.0),
        (changes.UPSERT, changes.change_row(_change(1, 10.0))),
        (changes.UPSERT, changes.change_row(_change(2, 20.0, service=None))),
        (changes.UPSERT, changes.change_row(_change(3, 30.0, mode="dry_run"))),
        (changes.UPSERT, changes.change_row(_change(4, 300.0))),
        (changes.LINK, (1, 5, 11.0, "opened after it")),
    )
    sql = sql_backend.primary
    assert [(r["service"], r["status"]) for r in reports.problems_opened_before(sql, 100.0)] == [("api", "known_error")]
    found = sorted(reports.live_changes(sql, 0.0, 100.0), key=lambda r: r["outcome"] or "")
    assert [(r["service"], r["outcome"], bool(r["causing"])) for r in found] == [
        (None, None, False),
        ("api", "successful", True),
    ]
