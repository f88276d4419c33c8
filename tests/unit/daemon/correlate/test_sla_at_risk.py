"""SLA targets at risk, driven by a ManualClock: the moment a share of a target is used is an event, recorded
once per incident and target (also across a restart), timed by the same maintenance and pause rules as the
deadlines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.catalogue.services import Catalogue
from daemon.clock import ManualClock
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.ruleset import RuleSet
from daemon.model import Source
from daemon.notify.publish.config import PublishConfig
from daemon.storage.incidents import load_incidents
from tests.unit.daemon.records import Stack, incoming

T0 = datetime.fromisoformat("2026-11-29T00:00:00+00:00").timestamp()  # a Sunday, 00:00 UTC
CATALOGUE = Catalogue.model_validate(
    {
        "pause_statuses": ["acknowledged"],
        "services": [
            {"name": "api", "tier": "high"},  # P1: respond 15m, resolve 4h
            {
                "name": "batch",
                "tier": "high",
                "targets": {"P1": {"respond": "30m", "resolve": "2h"}},
                "maintenance": [{"cron": "0 1 * * sun", "duration": "1h"}],
            },
        ],
    }
)
SHARES = PublishConfig(sla_at_risk={"default": 0.8, "P1": 0.5})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def open_stack(path: Path) -> Stack:
    return Stack(path, rules=RuleSet(catalogue=CATALOGUE), at_risk_share=SHARES.at_risk_share)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = open_stack(tmp_path)
    yield s
    s.close()


def listen(stack: Stack) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    stack.correlator.subscribe(events.append)
    return events


def at_risk(events: list[IncidentEvent]) -> list[tuple[str | None, float, float | None, float | None]]:
    return [(e.target, e.at, e.share, e.deadline) for e in events if e.kind is IncidentEventKind.SLA_AT_RISK]


def fire(stack: Stack, clock: ManualClock, service: str = "api") -> None:
    alert = incoming(alertname="Down", service=service, severity="critical", starts_at=clock.now())
    transitions, _ = stack.table.apply([alert], Source.ALERTMANAGER, clock.now())
    stack.correlator.handle(transitions, clock.now())


async def test_respond_at_risk_fires_once_at_the_share_of_the_target(stack: Stack, clock: ManualClock) -> None:
    events = listen(stack)
    fire(stack, clock)
    assert stack.correlator.next_due() == T0 + 450  # P1 respond 15m, share 0.5: 7.5 min
    clock.advance(449)
    stack.correlator.run_due(clock.now())
    assert at_risk(events) == []
    clock.advance(1)
    stack.correlator.run_due(clock.now())
    stack.correlator.run_due(clock.now() + 60)
    assert at_risk(events) == [("respond", T0 + 450, 0.5, T0 + 900)]
    assert stack.correlator.next_due() == T0 + 900  # now the respond deadline itself
    await stack.writer.flush()
    rows = stack.db.conn.execute("SELECT at, detail FROM timeline WHERE kind = 'sla_at_risk'").fetchall()
    assert [(at, json.loads(d)) for at, d in rows] == [
        (T0 + 450, {"target": "respond", "share": 0.5, "deadline": T0 + 900, "priority": "P1"})
    ]
    # A moment, not a change of state: no audit event.
    actions = [a for (a,) in stack.db.conn.execute("SELECT action FROM audit_events WHERE record_type = 'incident'")]
    assert actions == ["opened"]


def test_resolve_at_risk_fires_at_the_share_of_the_resolution_target(stack: Stack, clock: ManualClock) -> None:
    events = listen(stack)
    fire(stack, clock)
    stack.correlator.run_due(T0 + 900)  # respond at risk and breached at the same run: the breach only
    assert at_risk(events) == []
    assert [e.target for e in events if e.kind is IncidentEventKind.SLA_BREACHED] == ["respond"]
    assert stack.correlator.next_due() == T0 + 2 * 3600
    stack.correlator.run_due(T0 + 2 * 3600)
    assert at_risk(events) == [("resolve", T0 + 2 * 3600, 0.5, T0 + 4 * 3600)]


def test_acknowledged_before_the_moment_is_never_at_risk_to_respond(stack: Stack, clock: ManualClock) -> None:
    events = listen(stack)
    fire(stack, clock)
    stack.correlator.act(1, "acknowledge", T0 + 300, "alice")  # acknowledged pauses the resolution clock too
    assert stack.correlator.next_due() is None
    stack.correlator.run_due(T0 + 10 * 3600)
    assert at_risk(events) == []


async def test_not_sent_again_after_a_restart_and_still_due_after_one(tmp_path: Path, clock: ManualClock) -> None:
    first = open_stack(tmp_path)
    events = listen(first)
    fire(first, clock)
    clock.advance(60)
    fire(first, clock, service="batch")  # incident 2: respond 30m -> at risk 15m later, at T0 + 960
    first.correlator.run_due(T0 + 450)
    assert [(e.incident_id, e.target) for e in at_risk_events(events)] == [(1, "respond")]
    await first.writer.flush()
    first.close()

    second = open_stack(tmp_path)
    try:
        again = listen(second)
        second.correlator.restore(*load_incidents(second.db.primary), T0 + 450)
        # Incident 1's moment is recorded; incident 2's is computed from the stored clock.
        assert second.correlator.next_due() == T0 + 900
        second.correlator.run_due(T0 + 960)
        assert [(e.incident_id, e.target) for e in at_risk_events(again)] == [(2, "respond")]
    finally:
        second.close()


def at_risk_events(events: list[IncidentEvent]) -> list[IncidentEvent]:
    return [e for e in events if e.kind is IncidentEventKind.SLA_AT_RISK]


def test_a_maintenance_window_moves_the_moment(stack: Stack, clock: ManualClock) -> None:
    events = listen(stack)
    clock.advance(50 * 60)  # 00:50 UTC Sunday; batch is in maintenance 01:00-02:00
    fire(stack, clock, service="batch")
    incident = stack.correlator.get(1)
    assert incident is not None and incident.priority == "P1"
    # 15 min of SLA time (0.5 x 30m): 10 before the window, 5 after it.
    assert incident.sla.respond_risk_by == T0 + 2 * 3600 + 5 * 60
    stack.correlator.run_due(T0 + 3600 + 5 * 60)  # when it would be without the window
    assert at_risk(events) == []
    stack.correlator.run_due(T0 + 2 * 3600 + 5 * 60)
    assert at_risk(events) == [("respond", T0 + 2 * 3600 + 5 * 60, 0.5, T0 + 2 * 3600 + 20 * 60)]


def test_without_a_share_nothing_is_at_risk(tmp_path: Path, clock: ManualClock) -> None:
    s = Stack(tmp_path, rules=RuleSet(catalogue=CATALOGUE))
    try:
        events = listen(s)
        fire(s, clock)
        assert s.correlator.next_due() == T0 + 900
        s.correlator.run_due(T0 + 899)
        assert at_risk(events) == []
    finally:
        s.close()
