"""Incident lifecycle by people, priority that only rises, flapping alerts keeping one incident, and the
events the runbook engine codes against."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.api.errors import status_of
from daemon.catalogue.services import Catalogue, Service
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.metrics import pairs
from daemon.correlate.rules import CorrelationRules, Flapping
from daemon.correlate.ruleset import RuleSet
from daemon.errors import RequestError
from daemon.model import IncidentStatus, IncomingAlert, Source
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
RULES = RuleSet(
    catalogue=Catalogue(services=(Service(name="api", tier="high"),)),
    correlation=CorrelationRules(reopen_window=600.0, flapping=Flapping(window=600.0, enter=4, leave=1)),
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, rules=RULES)
    yield s
    s.close()


def feed(stack: Stack, now: float, *alerts: IncomingAlert) -> None:
    transitions, _ = stack.table.apply(list(alerts), Source.ALERTMANAGER, now)
    stack.correlator.handle(transitions, now)


def alert(instance: str = "1", severity: str = "warning", *, firing: bool = True, at: float = T0) -> IncomingAlert:
    return incoming(
        firing=firing,
        starts_at=at,
        ends_at=None if firing else at,
        alertname="Down",
        service="api",
        instance=instance,
        severity=severity,
    )


async def timeline(stack: Stack, incident_id: int = 1) -> list[tuple[str, dict[str, object]]]:
    await stack.writer.flush()
    rows = stack.db.conn.execute("SELECT kind, detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    return [(kind, json.loads(detail)) for kind, detail in rows]


def test_acknowledge_resolve_close_with_who_and_why(stack: Stack) -> None:
    feed(stack, T0, alert())
    c = stack.correlator
    incident = c.act(1, "acknowledge", T0 + 60, "alice", "looking")
    assert (incident.status, incident.acknowledged_at) == (IncidentStatus.ACKNOWLEDGED, T0 + 60)
    feed(stack, T0 + 100, alert(firing=False, at=T0 + 99))
    assert incident.status is IncidentStatus.RESOLVED
    c.act(1, "close", T0 + 200, "bob", "verified")
    assert (incident.status, incident.closed_at) == (IncidentStatus.CLOSED, T0 + 200)
    with pytest.raises(RequestError) as caught:
        c.act(1, "reopen", T0 + 300, "bob", "again")
    assert (status_of(caught.value), caught.value.reason) == (409, "invalid_transition")
    assert "allowed: none" in caught.value.message


async def test_transitions_land_on_the_timeline_and_in_the_audit_trail(stack: Stack) -> None:
    feed(stack, T0, alert())
    stack.correlator.act(1, "acknowledge", T0 + 60, "alice", "on it")
    kinds = await timeline(stack)
    assert kinds[-1] == ("acknowledged", {"by": "alice", "reason": "on it"})
    [(actor, action, before, after)] = stack.db.conn.execute(
        "SELECT actor, action, before, after FROM audit_events WHERE record_id = '1' AND action = 'acknowledged'"
    ).fetchall()
    assert (actor, action) == ("alice", "acknowledged")
    assert json.loads(before)["status"] == "open"
    assert json.loads(after)["status"] == "acknowledged"
    assert "priority" not in json.loads(after)  # only what changed


@pytest.mark.parametrize(("action", "allowed"), [("close", "acknowledge, resolve"), ("reopen", "acknowledge, resolve")])
def test_invalid_transition_names_the_allowed_ones(stack: Stack, action: str, allowed: str) -> None:
    feed(stack, T0, alert())
    with pytest.raises(RequestError) as caught:
        stack.correlator.act(1, action, T0 + 1, "alice")
    assert status_of(caught.value) == 409
    assert f"allowed: {allowed}" in caught.value.message


def test_unknown_incident_is_404(stack: Stack) -> None:
    with pytest.raises(RequestError) as caught:
        stack.correlator.act(7, "acknowledge", T0, "alice")
    assert status_of(caught.value) == 404


async def test_no_manual_resolve_while_alerts_fire_unless_forced(stack: Stack) -> None:
    feed(stack, T0, alert("1"), alert("2"))
    with pytest.raises(RequestError) as caught:
        stack.correlator.act(1, "resolve", T0 + 5, "alice", "fixed")
    assert (status_of(caught.value), caught.value.reason) == (409, "alerts_firing")
    incident = stack.correlator.act(1, "resolve", T0 + 6, "alice", "fixed, alerts lag", force=True)
    assert (incident.status, incident.resolved_by) == (IncidentStatus.RESOLVED, "manual")
    _, detail = (await timeline(stack))[-1]
    firing = detail["firing"]
    assert detail["forced"] is True and isinstance(firing, list) and len(firing) == 2
    # The alerts ending later change nothing more; firing again reopens the same incident.
    feed(stack, T0 + 10, alert("1", firing=False, at=T0 + 10), alert("2", firing=False, at=T0 + 10))
    assert incident.status is IncidentStatus.RESOLVED
    feed(stack, T0 + 20, alert("1", at=T0 + 20))
    assert (incident.status, incident.reopen_count) == (IncidentStatus.OPEN, 1)
    assert (
        stack.counters.get("itsmd_incidents_resolved_total", pairs(service="api", priority="P2", resolved_by="manual"))
        == 1
    )


async def test_priority_rises_with_a_more_urgent_alert_and_never_falls(stack: Stack) -> None:
    feed(stack, T0, alert("1", "warning"))
    incident = stack.correlator.get(1)
    assert incident is not None and incident.priority == "P2"  # high tier x medium urgency
    respond_before = incident.sla.respond_by
    feed(stack, T0 + 60, alert("2", "critical"))
    assert incident.priority == "P1"
    assert incident.sla.respond_by is not None and respond_before is not None
    assert incident.sla.respond_by < respond_before  # P1's tighter target applies from the open time
    assert incident.sla.respond_by == T0 + 15 * 60
    feed(stack, T0 + 120, alert("3", "info"))
    assert incident.priority == "P1"
    raised = [d for k, d in await timeline(stack) if k == "priority_raised"]
    assert raised == [{"from": "P2", "to": "P1", "alert": alert("2", "critical").fingerprint, "urgency": "high"}]


async def test_flapping_alert_keeps_one_incident_and_resolves_after_it_settles(stack: Stack) -> None:
    heard: list[IncidentEvent] = []
    stack.correlator.subscribe(heard.append)
    t = T0
    for _ in range(3):  # fire, end, fire, end, fire, end: 6 changes in 50 s
        feed(stack, t, alert(at=t))
        feed(stack, t + 5, alert(firing=False, at=t + 5))
        t += 20
    assert len(stack.correlator.incidents()) == 1
    incident = stack.correlator.get(1)
    assert incident is not None
    # The fourth change (second end) made it flapping; since then the incident stays open.
    assert incident.status is IncidentStatus.OPEN
    assert incident.flapping == {alert().fingerprint}
    assert len(stack.correlator.flaps) == 1
    assert [e.kind for e in heard] == [IncidentEventKind.OPENED, IncidentEventKind.RESOLVED, IncidentEventKind.REOPENED]
    due = stack.correlator.next_due()
    assert due is not None and due > t
    stack.correlator.run_due(due - 1)
    assert incident.status is IncidentStatus.OPEN
    stack.correlator.run_due(due)
    assert stack.correlator.get(1) is incident
    assert incident.status.value == "resolved"
    assert incident.flapping == set()
    kinds = [k for k, _ in await timeline(stack)]
    assert kinds.count("flapping_started") == 1 and kinds.count("flapping_stopped") == 1
    assert kinds.count("opened") == 1 and kinds.count("reopened") == 1 and kinds.count("resolved") == 2


def test_events_carry_the_real_priority(stack: Stack) -> None:
    heard: list[IncidentEvent] = []
    stack.correlator.subscribe(heard.append)
    feed(stack, T0, alert("1", "critical"))
    assert (heard[0].kind, heard[0].priority, heard[0].service) == (IncidentEventKind.OPENED, "P1", "api")


def test_a_failing_listener_does_not_lose_the_change(stack: Stack) -> None:
    def broken(event: IncidentEvent) -> None:
        raise RuntimeError("bug in a later stage")

    stack.correlator.subscribe(broken)
    feed(stack, T0, alert())
    assert stack.correlator.get(1) is not None


def test_correlation_window_opens_a_new_incident_for_a_long_running_key(tmp_path: Path) -> None:
    rules = RuleSet(correlation=CorrelationRules(window=3600.0))
    s = Stack(tmp_path, rules=rules)
    try:
        feed(s, T0, alert("1"))
        feed(s, T0 + 1800, alert("2", at=T0 + 1800))
        feed(s, T0 + 1800 + 3601, alert("3", at=T0 + 5401))
        assert sorted(len(i.fingerprints) for i in s.correlator.incidents()) == [1, 2]
    finally:
        s.close()


def test_rules_decide_key_title_and_windows(tmp_path: Path) -> None:
    rules = RuleSet(
        correlation=CorrelationRules.model_validate(
            {
                "rules": [
                    {
                        "name": "per-host",
                        "matchers": ['alertname="Down"'],
                        "group_by": ["alertname", "instance"],
                        "title": "{{ labels.alertname }} on {{ labels.instance }} ({{ priority }})",
                    }
                ]
            }
        )
    )
    s = Stack(tmp_path, rules=rules)
    try:
        feed(s, T0, alert("1"), alert("2"))
        titles = sorted(i.title for i in s.correlator.incidents())
        assert titles == ["Down on 1 (P3)", "Down on 2 (P3)"]
        assert {i.rule for i in s.correlator.incidents()} == {"per-host"}
        assert s.correlator.incident_for('per-host:{alertname="Down",instance="1"}') is not None
    finally:
        s.close()


def test_a_title_template_failing_on_alert_data_falls_back(tmp_path: Path) -> None:
    rules = RuleSet(correlation=CorrelationRules(title="{{ labels.missing }} {{ labels.alertname }}"))
    s = Stack(tmp_path, rules=rules)
    try:
        feed(s, T0, alert())
        [incident] = s.correlator.incidents()
        assert incident.title.startswith("Down on unknown (title template failed")
    finally:
        s.close()


def test_label_values_are_data_not_template_code(tmp_path: Path) -> None:
    rules = RuleSet(correlation=CorrelationRules(title="{{ labels.summary }}"))
    s = Stack(tmp_path, rules=rules)
    try:
        feed(s, T0, incoming(alertname="X", summary="{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}"))
        [incident] = s.correlator.incidents()
        assert incident.title == "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}"
    finally:
        s.close()
