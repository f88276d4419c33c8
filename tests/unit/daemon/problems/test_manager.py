"""Candidate problems from recurring incidents, their lifecycle, known errors on new incidents, restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.api.errors import status_of
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.metrics import pairs
from daemon.correlate.rules import CorrelationRules, Flapping, Recurrence
from daemon.errors import RequestError
from daemon.model import ProblemStatus, Source
from daemon.storage.incidents import load_incidents, recent_signatures
from daemon.storage.problems import load_problems
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
# Flapping off: the same alert firing and ending every 100 s would otherwise flap and keep one incident.
RULES = CorrelationRules(
    reopen_window=0.0, recurrence=Recurrence(count=3, window=3600.0), flapping=Flapping(enabled=False)
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, rules=RULES)
    yield s
    s.close()


def outage(stack: Stack, at: float, instance: str = "1", alertname: str = "Down") -> None:
    """An alert fires at `at` and resolves 10 s later: one incident."""
    up = incoming(alertname=alertname, service="api", instance=instance, starts_at=at)
    down = incoming(alertname=alertname, service="api", instance=instance, starts_at=at, firing=False, ends_at=at + 10)
    for alert, now in ((up, at), (down, at + 10)):
        transitions, _ = stack.table.apply([alert], Source.ALERTMANAGER, now)
        stack.correlator.handle(transitions, now)


def test_recurrence_opens_a_candidate_linking_all_occurrences(stack: Stack) -> None:
    heard: list[IncidentEvent] = []
    stack.correlator.subscribe(heard.append)
    outage(stack, T0)
    outage(stack, T0 + 600, instance="2")  # another instance: same signature (alertname, service)
    assert stack.correlator.problems.problems() == []
    outage(stack, T0 + 1200)
    [problem] = stack.correlator.problems.problems()
    assert problem.status is ProblemStatus.CANDIDATE
    assert problem.incidents == [1, 2, 3]
    assert problem.signature == '{alertname="Down",service="api"}'
    incident = stack.correlator.get(3)
    assert incident is not None and incident.problem_id == problem.id
    repeated = [e for e in heard if e.kind is IncidentEventKind.REPEATED]
    assert [(e.incident_id, e.problem_id, e.priority) for e in repeated] == [(3, problem.id, "P3")]
    assert stack.counters.get("itsmd_problems_opened_total", (("service", "api"),)) == 1
    assert stack.counters.get("itsmd_incidents_repeat_total", pairs(service="api", priority="P3")) == 1


def test_occurrences_outside_the_window_do_not_count(stack: Stack) -> None:
    outage(stack, T0)
    outage(stack, T0 + 3000)
    outage(stack, T0 + 3700)  # the first is more than an hour before: only two in the window
    assert stack.correlator.problems.problems() == []
    outage(stack, T0 + 3800)
    [problem] = stack.correlator.problems.problems()
    assert problem.incidents == [2, 3, 4]


def test_other_signatures_do_not_mix(stack: Stack) -> None:
    outage(stack, T0, alertname="A")
    outage(stack, T0 + 100, alertname="B")
    outage(stack, T0 + 200, alertname="A")
    assert stack.correlator.problems.problems() == []


def test_later_recurrences_attach(stack: Stack) -> None:
    for i in range(5):
        outage(stack, T0 + i * 100)
    [problem] = stack.correlator.problems.problems()
    assert problem.incidents == [1, 2, 3, 4, 5]


def test_lifecycle_and_known_error_on_new_incidents(stack: Stack) -> None:
    heard: list[IncidentEvent] = []
    stack.correlator.subscribe(heard.append)
    for i in range(3):
        outage(stack, T0 + i * 100)
    problems = stack.correlator.problems
    with pytest.raises(RequestError) as caught:
        problems.transition(1, "known_error", T0 + 400, "carol")
    assert (status_of(caught.value), "root_cause and workaround" in caught.value.message) == (400, True)
    problems.transition(1, "confirm", T0 + 400, "carol", reason="same root every time")
    with pytest.raises(RequestError) as caught:
        problems.transition(1, "confirm", T0 + 401, "carol")
    assert status_of(caught.value) == 409
    assert "allowed: known_error, resolve" in caught.value.message
    problems.transition(
        1, "known_error", T0 + 500, "carol", root_cause="leaky pool", workaround="restart api", runbook="restart-api"
    )
    outage(stack, T0 + 600)
    incident = stack.correlator.get(4)
    assert incident is not None and incident.workaround == "restart api"
    known = [e for e in heard if e.kind is IncidentEventKind.KNOWN_ERROR]
    assert [(e.incident_id, e.problem_id, e.runbook) for e in known] == [(4, 1, "restart-api")]
    problems.transition(1, "resolve", T0 + 700, "carol", reason="pool fixed in 2.3")
    assert problems.get(1) is None
    with pytest.raises(RequestError) as caught:
        problems.transition(1, "confirm", T0 + 701, "carol")
    assert status_of(caught.value) == 404
    # After resolution the signature starts counting afresh.
    outage(stack, T0 + 800)
    assert problems.problems() == []


async def test_problems_incidents_and_history_survive_a_restart(tmp_path: Path) -> None:
    s = Stack(tmp_path, rules=RULES)
    for i in range(3):
        outage(s, T0 + i * 100)
    outage(s, T0 + 300, alertname="Other")
    s.correlator.problems.transition(1, "confirm", T0 + 400, "carol")
    s.correlator.act(4, "close", T0 + 410, "carol", "noise")
    await s.writer.flush()
    s.close()

    r = Stack(tmp_path, rules=RULES)
    try:
        conn = r.db.conn
        problems, next_id = load_problems(r.db.primary)
        assert [(p.id, p.status, p.incidents) for p in problems] == [(1, ProblemStatus.CONFIRMED, [1, 2, 3])]
        assert next_id == 2
        incidents, next_incident = load_incidents(r.db.primary)
        assert sorted(i.id for i in incidents) == [1, 2, 3]  # 4 is closed
        assert next_incident == 5
        assert {i.priority for i in incidents} == {"P3"}
        assert {i.problem_id for i in incidents} == {None, 1}
        # Incidents already in a problem do not count towards another one.
        assert recent_signatures(r.db.primary, T0 - 1) == [('{alertname="Other",service="api"}', T0 + 300, 4)]
        events = conn.execute("SELECT record_type, action FROM audit_events ORDER BY id").fetchall()
        assert ("problem", "opened") in events and ("problem", "confirm") in events
        assert ("incident", "closed") in events
        [after] = conn.execute("SELECT after FROM audit_events WHERE action = 'confirm'").fetchone()
        assert json.loads(after)["status"] == "confirmed"
    finally:
        r.close()


def test_history_older_than_the_longest_window_is_forgotten(stack: Stack) -> None:
    outage(stack, T0)
    outage(stack, T0 + 100, alertname="Other")
    stack.correlator.run_due(T0 + 3650)  # the first is older than the 1 h window now
    assert list(stack.correlator.problems._history) == ['{alertname="Other",service="api"}']
    stack.correlator.run_due(T0 + 3750)
    assert stack.correlator.problems._history == {}
