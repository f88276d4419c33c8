from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.changes.ledger import CAUSING_INCIDENTS, CHANGES_TOTAL, ChangeLedger
from daemon.changes.model import ChangeOutcome, ChangePolicy, ChangeType
from daemon.clock import ManualClock
from daemon.correlate.events import IncidentEvent
from daemon.correlate.rules import CorrelationRules
from daemon.model import Incident, Source
from daemon.runbook.model import Run, RunEvent, RunEventKind, RunMode, RunStatus
from daemon.storage.changes import get_change, list_changes, load_changes
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
WINDOW = 600.0
POLICIES = {
    "restart": ChangePolicy(needs_approval=False, risk="low"),
    "failover": ChangePolicy(needs_approval=True, risk="high"),
    "declared-normal": ChangePolicy(needs_approval=False, risk="medium", declared="normal"),
}


class Rig:
    def __init__(self, path: Path) -> None:
        self.clock = ManualClock(T0)
        self.stack = Stack(path, rules=CorrelationRules(reopen_window=600.0))
        self.ledger = ChangeLedger(
            self.stack.writer,
            self.stack.counters,
            self.stack.correlator,
            self.clock,
            suspect_window=WINDOW,
            policy_of=POLICIES.__getitem__,
        )
        self.events: list[IncidentEvent] = []
        self.stack.correlator.subscribe(self.ledger.on_incident_event)
        self.stack.correlator.subscribe(self.events.append)
        self._next_run = 1

    def run(
        self,
        runbook: str = "restart",
        *,
        service: str | None = "api",
        mode: RunMode = RunMode.LIVE,
        emergency: bool = False,
        incident_id: int | None = None,
    ) -> Run:
        run = Run(
            id=self._next_run,
            runbook=runbook,
            version="sha256:" + "0" * 64,
            mode=mode,
            status=RunStatus.PENDING,
            params={"instance": "a:9100"},
            trigger="manual",
            requested_by="cli:alice",
            incident_id=incident_id,
            service=service,
            emergency=emergency,
            created_at=self.clock.now(),
        )
        self._next_run += 1
        self.emit(run, "created")
        return run

    def emit(self, run: Run, kind: RunEventKind) -> None:
        self.ledger.on_run_event(RunEvent(run, kind))

    def move(self, run: Run, status: RunStatus, reason: str = "") -> None:
        run.status = status
        run.reason = reason
        now = self.clock.now()
        if status is RunStatus.RUNNING and run.started_at is None:
            run.started_at = now
        if status.terminal:
            run.ended_at = now
        self.emit(run, "status")

    def open_incident(self, service: str = "api", alertname: str = "HighLatency") -> Incident:
        now = self.clock.now()
        alert = incoming(alertname=alertname, service=service, instance="a", starts_at=now)
        transitions, _ = self.stack.table.apply([alert], Source.ALERTMANAGER, now)
        self.stack.correlator.handle(transitions, now)
        incident = self.stack.correlator.incident_for(self.stack.correlator.key_of(alert.labels))
        assert incident is not None
        return incident

    def close(self) -> None:
        self.stack.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def changes_total(rig: Rig, service: str, change_type: str, outcome: str) -> float:
    labels = (("change_type", change_type), ("outcome", outcome), ("service", service))
    return rig.stack.counters.get(CHANGES_TOTAL, labels)


async def test_a_live_run_is_a_standard_change_closed_with_the_run_outcome(rig: Rig) -> None:
    run = rig.run()
    change = rig.ledger.for_run(run.id)
    assert change is not None
    assert (change.change_type, change.risk, change.outcome) == (ChangeType.STANDARD, "low", None)
    rig.clock.advance(1)
    rig.move(run, RunStatus.RUNNING)
    rig.clock.advance(2)
    rig.move(run, RunStatus.ROLLED_BACK, "verify failed: probe down")
    assert change.outcome is ChangeOutcome.ROLLED_BACK
    assert (change.started_at, change.ended_at) == (T0 + 1, T0 + 3)
    assert changes_total(rig, "api", "standard", "rolled_back") == 1

    await rig.stack.writer.flush()
    stored = get_change(rig.stack.db.primary, change.id)
    assert stored is not None
    assert stored["outcome"] == "rolled_back"
    assert stored["run_status"] == "rolled_back"
    assert stored["reason"] == "verify failed: probe down"
    assert [e["kind"] for e in stored["events"]] == ["created", "status", "status"]
    assert stored["events"][2]["detail"] == {
        "from": "running",
        "to": "rolled_back",
        "reason": "verify failed: probe down",
    }
    assert stored["events"][0]["detail"]["params"] == {"instance": "a:9100"}


@pytest.mark.parametrize(
    ("runbook", "emergency", "expected"),
    [
        ("restart", False, ChangeType.STANDARD),
        ("failover", False, ChangeType.NORMAL),
        ("declared-normal", False, ChangeType.NORMAL),
        ("restart", True, ChangeType.EMERGENCY),
        ("failover", True, ChangeType.EMERGENCY),
    ],
)
def test_change_type_from_approval_policy_and_emergency(
    rig: Rig, runbook: str, emergency: bool, expected: ChangeType
) -> None:
    change = rig.ledger.for_run(rig.run(runbook, emergency=emergency).id)
    assert change is not None
    assert change.change_type is expected


def test_dry_runs_are_no_changes_and_drills_are(rig: Rig) -> None:
    assert rig.ledger.for_run(rig.run(mode=RunMode.DRY_RUN).id) is None
    drill = rig.ledger.for_run(rig.run(mode=RunMode.DRILL).id)
    assert drill is not None
    assert drill.mode == "drill"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (RunStatus.SUCCEEDED, ChangeOutcome.SUCCESSFUL),
        (RunStatus.FAILED, ChangeOutcome.FAILED),
        (RunStatus.ROLLBACK_FAILED, ChangeOutcome.ROLLBACK_FAILED),
        (RunStatus.ABORTED, ChangeOutcome.ABORTED),
        (RunStatus.REJECTED, ChangeOutcome.REJECTED),
        (RunStatus.CANCELLED, ChangeOutcome.CANCELLED),
        (RunStatus.SKIPPED, ChangeOutcome.SKIPPED),
    ],
)
def test_every_terminal_status_maps_to_an_outcome(rig: Rig, status: RunStatus, outcome: ChangeOutcome) -> None:
    run = rig.run()
    rig.move(run, status)
    change = rig.ledger.for_run(run.id)
    assert change is not None
    assert change.outcome is outcome


def test_a_held_run_keeps_its_change_open_until_a_human_cancels_it(rig: Rig) -> None:
    run = rig.run()
    rig.move(run, RunStatus.RUNNING)
    rig.move(run, RunStatus.HELD, "interrupted by a restart during a non-idempotent step")
    change = rig.ledger.for_run(run.id)
    assert change is not None
    assert (change.run_status, change.outcome) == ("held", None)
    rig.move(run, RunStatus.CANCELLED, "checked by hand: nothing changed")
    assert change.outcome is ChangeOutcome.CANCELLED
    assert changes_total(rig, "api", "standard", "cancelled") == 1


def test_a_run_born_terminal_closes_its_change_at_once(rig: Rig) -> None:
    run = Run(
        id=99,
        runbook="restart",
        version="v",
        mode=RunMode.LIVE,
        status=RunStatus.SKIPPED,
        params={},
        trigger="incident_opened",
        requested_by="trigger",
        incident_id=None,
        service="api",
        emergency=False,
        created_at=T0,
        ended_at=T0,
        reason="circuit breaker open",
    )
    rig.emit(run, "created")
    change = rig.ledger.for_run(99)
    assert change is not None
    assert change.outcome is ChangeOutcome.SKIPPED


async def test_incident_opened_soon_after_a_change_on_its_service_is_linked_to_it(rig: Rig) -> None:
    run = rig.run()
    rig.move(run, RunStatus.RUNNING)
    rig.clock.advance(30)
    rig.move(run, RunStatus.SUCCEEDED)
    rig.clock.advance(WINDOW - 60)
    incident = rig.open_incident()
    change = rig.ledger.for_run(run.id)
    assert change is not None
    assert incident.suspected_change == change.id
    assert change.suspected_incidents == [incident.id]
    assert rig.stack.counters.get(CAUSING_INCIDENTS, (("service", "api"),)) == 1

    await rig.stack.writer.flush()
    conn = rig.stack.db.conn
    stored = get_change(rig.stack.db.primary, change.id)
    assert stored is not None
    assert [i["incident_id"] for i in stored["suspected_incidents"]] == [incident.id]
    assert stored["events"][-1]["kind"] == "suspected_cause"
    timeline = conn.execute(
        "SELECT detail FROM timeline WHERE incident_id = ? AND kind = 'suspected_change'", (incident.id,)
    ).fetchone()
    assert json.loads(timeline[0])["change"] == change.id


def test_a_change_still_in_progress_is_a_suspect(rig: Rig) -> None:
    run = rig.run()
    rig.move(run, RunStatus.RUNNING)
    rig.clock.advance(WINDOW * 3)
    incident = rig.open_incident()
    change = rig.ledger.for_run(run.id)
    assert change is not None
    assert incident.suspected_change == change.id


def test_no_link_outside_the_window_on_another_service_or_for_the_changes_own_incident(rig: Rig) -> None:
    old = rig.run()
    rig.move(old, RunStatus.RUNNING)
    rig.move(old, RunStatus.SUCCEEDED)
    rig.clock.advance(WINDOW + 1)
    assert rig.open_incident(alertname="Late").suspected_change is None

    other = rig.run(service="db")
    rig.move(other, RunStatus.RUNNING)
    rig.move(other, RunStatus.SUCCEEDED)
    rig.clock.advance(1)
    assert rig.open_incident(alertname="Elsewhere").suspected_change is None

    assert rig.stack.counters.get(CAUSING_INCIDENTS, (("service", "api"),)) == 0


def test_a_change_started_for_an_incident_is_not_that_incidents_suspect(rig: Rig) -> None:
    # The trigger's change is created inside the incident's own "opened" event, at the same instant.
    created: list[int] = []

    def trigger(event: IncidentEvent) -> None:
        run = rig.run(incident_id=event.incident_id)
        rig.move(run, RunStatus.RUNNING)
        created.append(run.id)

    rig.stack.correlator._listeners.insert(0, trigger)
    incident = rig.open_incident()
    assert created
    assert incident.suspected_change is None


def test_a_run_rejected_before_it_started_changed_nothing_and_is_no_suspect(rig: Rig) -> None:
    run = rig.run("failover")
    rig.move(run, RunStatus.WAITING_APPROVAL)
    rig.move(run, RunStatus.REJECTED, "rejected by bob")
    rig.clock.advance(5)
    assert rig.open_incident().suspected_change is None


async def test_open_and_recent_changes_come_back_after_a_restart(rig: Rig, tmp_path: Path) -> None:
    done = rig.run()
    rig.move(done, RunStatus.RUNNING)
    rig.move(done, RunStatus.SUCCEEDED)
    held = rig.run()
    rig.move(held, RunStatus.RUNNING)
    rig.move(held, RunStatus.HELD)
    await rig.stack.writer.flush()

    snapshot = load_changes(rig.stack.db.primary, now=T0 + WINDOW * 2, window=WINDOW)
    assert [c.run_id for c in snapshot.changes] == [held.id]
    assert snapshot.next_id == 3
    recent = load_changes(rig.stack.db.primary, now=T0 + 1, window=WINDOW)
    assert [c.run_id for c in recent.changes] == [done.id, held.id]

    rig.ledger.restore(snapshot)
    rig.move(held, RunStatus.CANCELLED)
    later = rig.run()
    restored = rig.ledger.for_run(held.id)
    assert restored is not None
    assert restored.outcome is ChangeOutcome.CANCELLED
    newer = rig.ledger.for_run(later.id)
    assert newer is not None and newer.id == 3


async def test_list_filters_by_service_outcome_and_state(rig: Rig) -> None:
    failed = rig.run()
    rig.move(failed, RunStatus.FAILED)
    rig.run(service="db")
    await rig.stack.writer.flush()

    def ids(service: str | None = None, outcome: str | None = None, state: str = "all") -> list[int]:
        found = list_changes(rig.stack.db.primary, service=service, outcome=outcome, state=state, limit=10, offset=0)
        return [c["id"] for c in found]

    assert ids() == [2, 1]
    assert ids(service="api") == [1]
    assert ids(outcome="failed") == [1]
    assert ids(state="open") == [2]
    assert ids(state="closed") == [1]


def test_a_drill_is_a_change_but_no_suspect_for_another_services_incident(rig: Rig) -> None:
    drill = rig.run(service="db", mode=RunMode.DRILL)
    rig.move(drill, RunStatus.RUNNING)  # still in progress: the widest case of the rule
    rig.clock.advance(5)
    assert rig.open_incident(service="api", alertname="Elsewhere").suspected_change is None
    own = rig.open_incident(service="db", alertname="DbDown")
    change = rig.ledger.for_run(drill.id)
    assert change is not None and change.mode == "drill"
    assert own.suspected_change == change.id
