"""SLA clocks driven by a ManualClock: deadlines from service and priority, maintenance and pause statuses,
breaches recorded once, on time, in the timeline and the metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.catalogue.services import Catalogue
from daemon.clock import ManualClock
from daemon.correlate.metrics import pairs
from daemon.correlate.ruleset import RuleSet
from daemon.model import IncomingAlert, Source
from tests.unit.daemon.records import Stack, incoming

UTC_SUNDAY_MIDNIGHT = datetime.fromisoformat("2026-11-29T00:00:00+00:00").timestamp()
CATALOGUE = Catalogue.model_validate(
    {
        "pause_statuses": ["acknowledged"],
        "services": [
            {"name": "api", "tier": "high"},
            {
                "name": "batch",
                "tier": "high",
                "targets": {"P1": {"respond": "30m", "resolve": "2h"}},
                "maintenance": [{"cron": "0 1 * * sun", "duration": "1h"}],
            },
        ],
    }
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(UTC_SUNDAY_MIDNIGHT)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, rules=RuleSet(catalogue=CATALOGUE))
    yield s
    s.close()


def fire(stack: Stack, clock: ManualClock, service: str = "api", severity: str = "critical") -> None:
    alert: IncomingAlert = incoming(alertname="Down", service=service, severity=severity, starts_at=clock.now())
    transitions, _ = stack.table.apply([alert], Source.ALERTMANAGER, clock.now())
    stack.correlator.handle(transitions, clock.now())


def breaches(stack: Stack, service: str, target: str, priority: str = "P1") -> float:
    return stack.counters.get(
        "itsmd_incident_sla_breaches_total", pairs(service=service, priority=priority, target=target)
    )


def test_deadlines_from_service_and_priority(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    incident = stack.correlator.get(1)
    assert incident is not None and incident.priority == "P1"
    assert (incident.sla.respond_by, incident.sla.resolve_by) == (clock.now() + 900, clock.now() + 4 * 3600)
    assert stack.correlator.next_due() == clock.now() + 900


async def test_response_breach_is_detected_at_the_deadline_and_recorded_once(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    clock.advance(899)
    stack.correlator.run_due(clock.now())
    assert breaches(stack, "api", "respond") == 0
    clock.advance(1)
    stack.correlator.run_due(clock.now())
    stack.correlator.run_due(clock.now() + 60)
    assert breaches(stack, "api", "respond") == 1
    await stack.writer.flush()
    rows = stack.db.conn.execute("SELECT at, detail FROM timeline WHERE kind = 'sla_breached'").fetchall()
    assert [(at, json.loads(d)["target"]) for at, d in rows] == [(UTC_SUNDAY_MIDNIGHT + 900, "respond")]
    # Acknowledging late does not count it twice; the next deadline is the resolution's.
    stack.correlator.act(1, "acknowledge", clock.now() + 61, "alice")
    assert breaches(stack, "api", "respond") == 1


def test_acknowledged_in_time_is_no_breach(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    stack.correlator.act(1, "acknowledge", clock.now() + 600, "alice")
    stack.correlator.run_due(clock.now() + 1000)
    assert breaches(stack, "api", "respond") == 0


def test_late_acknowledgement_before_the_scheduler_ran_is_a_breach(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    stack.correlator.act(1, "acknowledge", clock.now() + 901, "alice")
    assert breaches(stack, "api", "respond") == 1


def test_pause_status_stops_the_resolution_clock(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    incident = stack.correlator.get(1)
    assert incident is not None
    clock.advance(600)
    stack.correlator.act(1, "acknowledge", clock.now(), "alice")  # acknowledged pauses (pause_statuses)
    assert incident.sla.resolve_by is None
    assert stack.correlator.next_due() is None
    clock.advance(10 * 3600)  # paused: no breach however long
    stack.correlator.run_due(clock.now())
    assert breaches(stack, "api", "resolve") == 0
    # Resolving stops it for good; reopening resumes from the 600 s counted so far.
    stack.correlator.act(1, "resolve", clock.now(), "alice", force=True)
    clock.advance(60)
    stack.correlator.act(1, "reopen", clock.now(), "alice", "came back")
    assert incident.sla.resolve_by == clock.now() + 4 * 3600 - 600


def test_maintenance_window_does_not_count(stack: Stack, clock: ManualClock) -> None:
    clock.advance(30 * 60)  # 00:30 UTC Sunday; batch is in maintenance 01:00-02:00
    fire(stack, clock, service="batch")
    incident = stack.correlator.get(1)
    assert incident is not None
    assert incident.sla.respond_by == clock.now() + 30 * 60  # 01:00: before the window
    assert incident.sla.resolve_by == clock.now() + 2 * 3600 + 3600  # 2 h of SLA time around a 1 h window
    clock.advance(2 * 3600 + 3599)
    stack.correlator.run_due(clock.now())
    assert breaches(stack, "batch", "resolve") == 0
    clock.advance(1)
    stack.correlator.run_due(clock.now())
    assert breaches(stack, "batch", "resolve") == 1


async def test_an_incident_opened_in_maintenance_says_so(stack: Stack, clock: ManualClock) -> None:
    clock.advance(3600 + 600)  # 01:10, inside batch's window
    fire(stack, clock, service="batch")
    incident = stack.correlator.get(1)
    assert incident is not None
    assert incident.sla.respond_by == UTC_SUNDAY_MIDNIGHT + 2 * 3600 + 30 * 60  # the clock starts at 02:00
    await stack.writer.flush()
    [detail] = stack.db.conn.execute("SELECT detail FROM timeline WHERE kind = 'opened'").fetchone()
    assert json.loads(detail)["in_maintenance"] is True


def test_p5_has_no_clock(stack: Stack, clock: ManualClock) -> None:
    rules = RuleSet(catalogue=Catalogue.model_validate({"services": [{"name": "api", "tier": "low"}]}))
    stack.correlator.set_rules(rules)
    fire(stack, clock, severity="info")
    incident = stack.correlator.get(1)
    assert incident is not None and incident.priority == "P5"
    assert (incident.sla.respond_by, incident.sla.resolve_by) == (None, None)
    assert stack.correlator.next_due() is None


def test_histograms_observe_time_to_acknowledge_and_resolve(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)
    stack.correlator.act(1, "acknowledge", clock.now() + 120, "alice")
    stack.correlator.act(1, "resolve", clock.now() + 3000, "alice", force=True)
    ack = stack.correlator.metrics.ack.family("x")
    [p1] = [s for s in ack.samples if s.labels == {"priority": "P1", "le": "300.0"}]
    assert p1.value == 1
    [below] = [s for s in ack.samples if s.labels == {"priority": "P1", "le": "60.0"}]
    assert below.value == 0
    resolution = stack.correlator.metrics.resolution.family("x")
    [total] = [s for s in resolution.samples if s.name.endswith("_sum") and s.labels == {"priority": "P1"}]
    assert total.value == 3000


async def test_a_reload_that_adds_maintenance_moves_the_deadlines(stack: Stack, clock: ManualClock) -> None:
    fire(stack, clock)  # api, P1, no maintenance: resolve by 04:00
    incident = stack.correlator.get(1)
    assert incident is not None and incident.sla.resolve_by == clock.now() + 4 * 3600
    tonight = Catalogue.model_validate(
        {"services": [{"name": "api", "tier": "high", "maintenance": [{"cron": "0 1 * * *", "duration": "1h"}]}]}
    )
    clock.advance(60)
    stack.correlator.set_rules(RuleSet(catalogue=tonight), clock.now())
    assert incident.priority == "P1"  # kept
    assert incident.sla.resolve_by == UTC_SUNDAY_MIDNIGHT + 5 * 3600  # the 01:00-02:00 window does not count
    assert incident.sla.respond_by == UTC_SUNDAY_MIDNIGHT + 900  # before the window: unchanged
    await stack.writer.flush()
    kinds = [k for (k,) in stack.db.conn.execute("SELECT kind FROM timeline ORDER BY id")]
    assert kinds[-1] == "sla_recomputed"
