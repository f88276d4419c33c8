from __future__ import annotations

from typing import Any

from daemon.model import (
    Alert,
    AlertStatus,
    Incident,
    IncidentStatus,
    Problem,
    ProblemStatus,
    SlaClock,
    Source,
    TimelineEntry,
)
from daemon.storage import problems
from daemon.storage.alerts import alert_row
from daemon.storage.database import Batch
from daemon.storage.incidents import (
    INCIDENT,
    LINK,
    TIMELINE,
    AssignmentFilter,
    incident_exists,
    incident_row,
    load_incidents,
    open_by_service,
    read_incident,
    read_incidents,
    recent_signatures,
    timeline_row,
)
from daemon.storage.sql import Backend

T0 = 1_800_000_000.0


def _incident(iid: int, status: IncidentStatus = IncidentStatus.OPEN, **more: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": iid,
        "key": f"k{iid}",
        "service": "api",
        "title": f"Down {iid}",
        "status": status,
        "opened_at": T0 + iid,
        "signature": f"sig{iid}",
    }
    fields.update(more)
    return Incident(**fields)


def _alert(fp: str, status: AlertStatus = AlertStatus.FIRING, starts_at: float = T0) -> Alert:
    return Alert(
        fp, {"alertname": "Down", "instance": fp}, {}, status, starts_at, None, "", Source.ALERTMANAGER, T0, T0
    )


def _write(
    backend: Backend,
    *incidents: Incident,
    links: tuple[tuple[Any, ...], ...] = (),
    timeline: tuple[TimelineEntry, ...] = (),
) -> None:
    batch = Batch()
    for i in incidents:
        batch.upsert(INCIDENT, i.id, incident_row(i))
    for link in links:
        batch.upsert(LINK, link[:3], link)
    for entry in timeline:
        batch.append(TIMELINE, timeline_row(entry))
    backend.write(batch)


def _in_problem(backend: Backend, problem_id: int, incident_id: int) -> None:
    batch = Batch()
    problem = Problem(problem_id, "sig", "api", "t", ProblemStatus.CANDIDATE, T0, T0)
    batch.upsert(problems.UPSERT, problem_id, problems.problem_row(problem))
    batch.upsert(problems.LINK, (problem_id, incident_id), (problem_id, incident_id, T0))
    backend.write(batch)


def test_an_incident_loads_back_with_every_field_and_its_firing_alerts(sql_backend: Backend) -> None:
    full = _incident(
        1,
        IncidentStatus.ACKNOWLEDGED,
        reopen_count=2,
        priority="P1",
        rule="db",
        acknowledged_at=T0 + 60,
        last_attached_at=T0 + 30,
        sla=SlaClock(
            respond_target=900,
            resolve_target=14400,
            counted=12.5,
            since=T0 + 1,
            respond_by=T0 + 901,
            resolve_by=T0 + 14401,
            breaches={"respond"},
            at_risk={"respond", "resolve"},
        ),
        flapping={"b"},
        suspected_change=42,
        workaround="restart it",
        assignee="alice",
        team="web",
        external={"system": "jira", "key": "OPS-1", "url": "https://jira/OPS-1"},
    )
    _write(
        sql_backend,
        full,
        _incident(2, IncidentStatus.CLOSED, closed_at=T0 + 99, resolved_at=T0 + 50, resolved_by="bob"),
        links=((1, "a", T0, T0 + 1, None), (1, "b", T0, T0 + 2, T0 + 20)),
    )
    [loaded], next_id = load_incidents(sql_backend.primary)
    assert next_id == 3  # after the closed one too
    assert incident_row(loaded) == incident_row(full)
    assert loaded.sla.counted == 12.5 and loaded.sla.since == T0 + 1
    assert loaded.fingerprints == {"a", "b"}
    assert loaded.firing == {"a": (T0, T0 + 1)}


def test_a_link_upsert_ends_the_episode_it_names(sql_backend: Backend) -> None:
    _write(sql_backend, _incident(1), links=((1, "a", T0, T0, None), (1, "a", T0 + 100, T0 + 100, None)))
    _write(sql_backend, links=((1, "a", T0, T0, T0 + 50),))
    [loaded], _ = load_incidents(sql_backend.primary)
    assert loaded.firing == {"a": (T0 + 100, T0 + 100)}


def test_the_end_of_the_current_episode_is_restored_from_the_timeline(sql_backend: Backend) -> None:
    entries = (
        TimelineEntry(1, T0 + 1, "opened", {}),
        TimelineEntry(1, T0 + 10, "alert_resolved", {"ended_at": T0 + 8}),
        TimelineEntry(1, T0 + 20, "reopened", {}),
        TimelineEntry(1, T0 + 30, "alert_expired", {"ended_at": T0 + 5, "end_source": "last_seen"}),
        TimelineEntry(1, T0 + 40, "alert_resolved", {"ended_at": "not a time"}),
    )
    _write(sql_backend, _incident(1), links=((1, "a", T0 + 20, T0 + 20, None),), timeline=entries)
    [loaded], _ = load_incidents(sql_backend.primary)
    # Clamped to the reopening: the earlier episode's end does not count.
    assert (loaded.ended_at, loaded.end_source) == (T0 + 20, "last_seen")


def test_recent_signatures_skip_old_incidents_and_those_in_a_problem(sql_backend: Backend) -> None:
    _write(sql_backend, _incident(1), _incident(2), _incident(3), _incident(4, signature=""))
    batch = Batch()
    batch.upsert(
        problems.UPSERT, 1, problems.problem_row(Problem(1, "sig2", "api", "t", ProblemStatus.CANDIDATE, T0, T0))
    )
    batch.upsert(problems.LINK, (1, 2), (1, 2, T0))
    sql_backend.write(batch)
    assert recent_signatures(sql_backend.primary, T0 + 1) == [("sig1", T0 + 1, 1), ("sig3", T0 + 3, 3)]
    assert recent_signatures(sql_backend.primary, T0 + 2) == [("sig3", T0 + 3, 3)]


def test_existence_and_open_counts_by_service(sql_backend: Backend) -> None:
    _write(
        sql_backend,
        _incident(1),
        _incident(2, IncidentStatus.ACKNOWLEDGED),
        _incident(3, IncidentStatus.RESOLVED),
        _incident(4, service="db"),
    )
    reader = sql_backend.reader()
    try:
        assert incident_exists(reader, 4) and not incident_exists(reader, 5)
        assert open_by_service(reader) == {"api": 2, "db": 1}
    finally:
        reader.close()


def test_the_api_reads_list_filter_and_show_an_incident(sql_backend: Backend) -> None:
    resolved = _incident(
        2,
        IncidentStatus.RESOLVED,
        resolved_at=T0 + 40,
        resolved_by="alerts",
        assignee="alice",
        sla=SlaClock(respond_target=900, respond_by=T0 + 902, breaches={"respond"}),
    )
    batch = Batch()
    batch.alerts["a"] = alert_row(_alert("a", AlertStatus.EXPIRED, starts_at=T0 + 10))
    batch.alerts["b"] = alert_row(_alert("b"))
    sql_backend.write(batch)
    _write(
        sql_backend,
        _incident(1, team="web"),
        resolved,
        _incident(3, IncidentStatus.ACKNOWLEDGED, assignee="bob"),
        links=((2, "a", T0, T0 + 1, T0 + 5), (2, "a", T0 + 10, T0 + 11, T0 + 30), (2, "b", T0, T0 + 2, None)),
        timeline=(
            TimelineEntry(2, T0 + 2, "opened", {}),
            TimelineEntry(2, T0 + 35, "resolved", {"end_estimated": True, "end_source": "prometheus"}),
            TimelineEntry(2, T0 + 41, "resolved", {"end_estimated": False}),
        ),
    )
    batch = Batch()
    batch.upsert(
        problems.UPSERT, 7, problems.problem_row(Problem(7, "sig2", "api", "t", ProblemStatus.CANDIDATE, T0, T0))
    )
    batch.upsert(problems.LINK, (7, 2), (7, 2, T0))
    sql_backend.write(batch)
    reader = sql_backend.reader()
    try:
        assert [i["id"] for i in read_incidents(reader, None, 10, 0)] == [3, 2, 1]
        assert [i["id"] for i in read_incidents(reader, "open,acknowledged", 10, 0)] == [3, 1]
        assert [i["id"] for i in read_incidents(reader, None, 1, 1)] == [2]
        assert [i["id"] for i in read_incidents(reader, None, 10, 0, AssignmentFilter(unassigned=True))] == [1]
        assert [i["id"] for i in read_incidents(reader, None, 10, 0, AssignmentFilter(assignee="bob"))] == [3]
        by_team = AssignmentFilter(team="web", team_services=("api",))
        assert [i["id"] for i in read_incidents(reader, None, 10, 0, by_team)] == [3, 2, 1]
        assert [i["id"] for i in read_incidents(reader, None, 10, 0, AssignmentFilter(team="web"))] == [1]
        shown = read_incident(reader, 2)
        assert shown is not None
        assert shown["alert_count"] == 2 and shown["problem_id"] == 7 and shown["assignee"] == "alice"
        assert shown["resolution"] == {
            "ended_at": "2027-01-15T08:00:40.000Z",
            "recorded_at": "2027-01-15T08:00:41.000Z",
            "resolved_by": "alerts",
            "end_estimated": False,
            "end_source": None,
        }
        assert shown["sla"]["breaches"] == ["respond"] and shown["sla"]["respond_target_seconds"] == 900
        assert [(a["fingerprint"], a["status"]) for a in shown["alerts"]] == [
            ("a", "resolved"),
            ("b", "firing"),
            ("a", "expired"),
        ]
        assert [t["kind"] for t in shown["timeline"]] == ["opened", "resolved", "resolved"]
        listed = read_incidents(reader, "open", 10, 0)
        assert listed[0]["resolution"] is None and listed[0]["team"] == "web" and listed[0]["alert_count"] == 0
        assert read_incident(reader, 99) is None
    finally:
        reader.close()
