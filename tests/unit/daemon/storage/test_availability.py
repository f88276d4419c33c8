"""The incident history availability is computed from, read back through a backend."""

from __future__ import annotations

from daemon.availability.episodes import History, Mark
from daemon.storage.availability import load_histories
from daemon.storage.sql import Backend
from tests.unit.daemon.storage.backends_fixture import write
from tests.unit.daemon.storage.incident_rows import alert, incident, mark


def test_marks_and_the_opening_alerts_labels(sql_backend: Backend) -> None:
    labels = {"alertname": "ApiDown", "service": "api"}
    write(
        sql_backend,
        alert("fp1", labels, 10.0),
        incident(1, "api", 10.0, status="resolved", resolved=40.0),
        incident(2, "db", 50.0),
        mark(1, 10.0, "opened", priority="P2", alert="fp1"),
        mark(1, 15.0, "acknowledged", by="alice"),  # not a mark of downtime
        mark(1, 20.0, "priority_raised", to="P1"),
        # Recorded at 45, ended at 40 (an expiry): the episode ends at the recorded end.
        mark(1, 45.0, "resolved", ended_at=40.0),
        mark(1, 60.0, "reopened"),
        mark(2, 50.0, "opened", priority="P3", alert="gone"),
    )
    histories = load_histories(sql_backend.primary)
    assert histories == [
        History(
            1,
            "api",
            labels,
            [
                Mark(10.0, "opened", "P2"),
                Mark(20.0, "priority_raised", "P1"),
                Mark(40.0, "resolved"),
                Mark(60.0, "reopened"),
            ],
        ),
        History(2, "db", {}, [Mark(50.0, "opened", "P3")]),
    ]
    # A past period: marks recorded after `until` are not read.
    until = load_histories(sql_backend.primary, until=44.0)
    assert [[m.kind for m in h.marks] for h in until] == [["opened", "priority_raised"]]


def test_an_empty_store_has_no_history(sql_backend: Backend) -> None:
    assert load_histories(sql_backend.primary) == []


def test_since_reads_only_incidents_with_downtime_from_then_on(sql_backend: Backend) -> None:
    write(
        sql_backend,
        incident(1, "api", 10.0, status="closed", resolved=40.0),
        incident(2, "api", 30.0, status="resolved", resolved=70.0),
        incident(3, "db", 50.0),
        mark(1, 10.0, "opened", priority="P1"),
        mark(1, 40.0, "resolved"),
        mark(2, 30.0, "opened", priority="P1"),
        mark(2, 70.0, "resolved"),
        mark(3, 50.0, "opened", priority="P2"),
    )
    # Incident 1 ended before 60: its downtime is in the daily rollups, so the start-up read leaves it out.
    assert [h.incident_id for h in load_histories(sql_backend.primary, since=60.0)] == [2, 3]
    assert [h.incident_id for h in load_histories(sql_backend.primary, since=40.0)] == [1, 2, 3]
    assert [h.incident_id for h in load_histories(sql_backend.primary, since=60.0, until=45.0)] == [2]
