"""Incident assignment in the correlator: the team from the catalogue at opening, assign and unassign on the
timeline and in the audit trail, kept across a restart, and what is refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.api.errors import status_of
from daemon.catalogue.services import Catalogue, Service
from daemon.correlate.assignment import assignee_named, list_filter
from daemon.correlate.rules import CorrelationRules
from daemon.correlate.ruleset import RuleSet
from daemon.errors import RequestError
from daemon.model import IncidentStatus, Source
from daemon.storage.database import Database
from daemon.storage.incident_search import IncidentQuery, search_incidents
from daemon.storage.incidents import AssignmentFilter, load_incidents
from daemon.storage.schema import APPLICATION_ID, MIGRATIONS
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
CATALOGUE = Catalogue(services=(Service(name="api", team="web"), Service(name="db", team="dba"), Service(name="batch")))
RULES = RuleSet(catalogue=CATALOGUE, correlation=CorrelationRules(reopen_window=0.0, close_after=60.0))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, rules=RULES)
    yield s
    s.close()


def fire(stack: Stack, service: str, now: float = T0, *, firing: bool = True) -> None:
    alert = incoming(alertname="Down", service=service, firing=firing, starts_at=T0, ends_at=None if firing else now)
    transitions, _ = stack.table.apply([alert], Source.ALERTMANAGER, now)
    stack.correlator.handle(transitions, now)


async def entries(stack: Stack, incident_id: int = 1) -> list[tuple[str, dict[str, object]]]:
    await stack.writer.flush()
    rows = stack.db.conn.execute("SELECT kind, detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    return [(kind, json.loads(detail)) for kind, detail in rows]


def audit(stack: Stack, action: str) -> list[tuple[str, dict[str, object], dict[str, object]]]:
    rows = stack.db.conn.execute(
        "SELECT actor, before, after FROM audit_events WHERE record_id = '1' AND action = ? ORDER BY id", (action,)
    )
    return [(actor, json.loads(before), json.loads(after)) for actor, before, after in rows]


def test_an_incident_opens_with_its_services_team_and_nobody_assigned(stack: Stack) -> None:
    fire(stack, "api")
    fire(stack, "batch")
    api, batch = stack.correlator.get(1), stack.correlator.get(2)
    assert api is not None and batch is not None
    assert (api.team, api.assignee) == ("web", None)
    assert (batch.team, batch.assignee) == (None, None)


async def test_assign_and_unassign_are_recorded_and_survive_a_restart(tmp_path: Path) -> None:
    s = Stack(tmp_path, rules=RULES)
    fire(s, "api")
    s.correlator.assign(1, T0 + 10, "rita", assignee="alice", reason="on call", on_behalf_of="pager")
    s.correlator.assign(1, T0 + 20, "alice", team="dba")
    kinds = await entries(s)
    assert kinds[-2] == (
        "assigned",
        {
            "by": "rita",
            "assignee": "alice",
            "team": "web",
            "was": {"assignee": None, "team": "web"},
            "reason": "on call",
            "on_behalf_of": "pager",
        },
    )
    assert kinds[-1] == (
        "assigned",
        {"by": "alice", "assignee": "alice", "team": "dba", "was": {"assignee": "alice", "team": "web"}, "reason": ""},
    )
    [(actor, before, after), (second, _, moved)] = audit(s, "assigned")
    assert actor == "rita" and second == "alice"
    assert before == {"assignee": None, "on_behalf_of": None}
    assert after == {"assignee": "alice", "on_behalf_of": "pager"}
    assert moved == {"team": "dba"}
    s.close()

    r = Stack(tmp_path, rules=RULES)
    try:
        [incident], _ = load_incidents(r.db.primary)
        assert (incident.assignee, incident.team) == ("alice", "dba")
    finally:
        r.close()


async def test_unassigning_records_who_had_it(stack: Stack) -> None:
    fire(stack, "api")
    stack.correlator.assign(1, T0 + 10, "rita", assignee="alice")
    incident = stack.correlator.assign(1, T0 + 30, "bob", assignee=None)
    assert (incident.assignee, incident.team) == (None, "web")
    assert (await entries(stack))[-1] == (
        "unassigned",
        {"by": "bob", "assignee": None, "team": "web", "was": {"assignee": "alice", "team": "web"}, "reason": ""},
    )
    [(actor, before, after)] = audit(stack, "unassigned")
    assert (actor, before, after) == ("bob", {"assignee": "alice"}, {"assignee": None})


async def test_an_assignment_that_changes_nothing_records_nothing(stack: Stack) -> None:
    fire(stack, "api")
    stack.correlator.assign(1, T0 + 10, "rita", assignee="alice")
    before = await entries(stack)
    stack.correlator.assign(1, T0 + 20, "rita", assignee="alice", team="web")
    stack.correlator.assign(1, T0 + 30, "rita")
    assert await entries(stack) == before
    assert len(audit(stack, "assigned")) == 1


async def test_a_team_no_service_has_is_refused_and_nothing_changes(stack: Stack) -> None:
    fire(stack, "api")
    with pytest.raises(RequestError) as caught:
        stack.correlator.assign(1, T0 + 10, "rita", assignee="alice", team="dbas")
    assert (status_of(caught.value), caught.value.reason) == (400, "invalid_body")
    assert "no service in the catalogue has team 'dbas'; teams: dba, web" in caught.value.message
    incident = stack.correlator.get(1)
    assert incident is not None and (incident.assignee, incident.team) == (None, "web")
    assert [kind for kind, _ in await entries(stack)][-1] != "assigned"


def test_a_closed_incident_is_409_and_an_unknown_one_404(stack: Stack) -> None:
    fire(stack, "api")
    fire(stack, "api", T0 + 5, firing=False)
    stack.correlator.assign(1, T0 + 6, "rita", assignee="alice")  # resolved: still assignable
    stack.correlator.act(1, "close", T0 + 7, "rita")
    incident = stack.correlator.get(1)
    assert incident is not None and incident.status is IncidentStatus.CLOSED
    with pytest.raises(RequestError) as caught:
        stack.correlator.assign(1, T0 + 8, "rita", assignee=None)
    assert (status_of(caught.value), caught.value.message) == (409, "incident 1 is closed; allowed: none")
    assert incident.assignee == "alice"
    with pytest.raises(RequestError) as unknown:
        stack.correlator.assign(7, T0 + 8, "rita", assignee="bob")
    assert status_of(unknown.value) == 404


def test_me_is_the_caller_and_reserved_or_unusable_names_are_refused() -> None:
    assert assignee_named("me", "rita") == "rita"
    assert assignee_named("alice@example.com", "rita") == "alice@example.com"
    for bad in ("none", "None", "ME", "itsmd", "scheduler", "anonymous"):
        with pytest.raises(RequestError, match="is reserved"):
            assignee_named(bad, "rita")
    for bad in (" alice", "al\nice", "a" * 201, ""):
        with pytest.raises(RequestError, match="a principal's name"):
            assignee_named(bad, "rita")


def test_list_filters_take_me_none_and_a_team() -> None:
    assert list_filter("", "", "rita", CATALOGUE) == AssignmentFilter()
    assert list_filter("me", "", "rita", CATALOGUE) == AssignmentFilter(assignee="rita")
    assert list_filter("none", "dba", "rita", CATALOGUE) == AssignmentFilter(
        unassigned=True, team="dba", team_services=("db",)
    )
    with pytest.raises(RequestError) as caught:
        list_filter("x" * 201, "", "rita", CATALOGUE)
    assert (status_of(caught.value), caught.value.reason) == (400, "invalid_query")


def test_a_version_7_store_migrates_and_its_incidents_count_for_their_services_team(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    conn = sqlite3.connect(path, isolation_level=None)
    script = "".join(sql for version, sql in MIGRATIONS if version <= 7)
    conn.executescript(f"BEGIN; {script}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 7; COMMIT;")
    for n, service in enumerate(("api", "db"), 1):
        conn.execute(
            "INSERT INTO incidents (id, key, service, title, status, opened_at, reopen_count) "
            "VALUES (?, ?, ?, 't', 'open', ?, 0)",
            (n, f"k{n}", service, T0),
        )
    conn.close()
    db = Database(path)
    db.open()
    try:
        incidents, _ = load_incidents(db.primary)
        assert [(i.assignee, i.team) for i in incidents] == [(None, None), (None, None)]
        web = list_filter("", "web", "rita", CATALOGUE)
        found = search_incidents(db.primary, IncidentQuery(assignment=web))
        assert [i["id"] for i in found.incidents] == [1]
        assert found.incidents[0]["team"] is None
        everyone = search_incidents(db.primary, IncidentQuery(assignment=AssignmentFilter()))
        assert [i["id"] for i in everyone.incidents] == [2, 1]
    finally:
        db.close()
