from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.metrics import pairs
from daemon.correlate.rules import CorrelationRules
from daemon.model import Incident, IncidentStatus, IncomingAlert, Source
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, rules=CorrelationRules(reopen_window=600.0))
    yield s
    s.close()


KEY = '{alertname="TargetDown",service="api"}'


def feed(stack: Stack, now: float, *alerts: IncomingAlert, source: Source = Source.ALERTMANAGER) -> None:
    transitions, _ = stack.table.apply(list(alerts), source, now)
    stack.correlator.handle(transitions, now)


def a(instance: str, *, firing: bool = True, starts_at: float = T0, ends_at: float | None = None) -> IncomingAlert:
    return incoming(
        firing=firing, starts_at=starts_at, ends_at=ends_at, alertname="TargetDown", service="api", instance=instance
    )


def current(stack: Stack) -> Incident:
    incident = stack.correlator.incident_for(KEY)
    assert incident is not None
    return incident


async def stored_timeline(stack: Stack, incident_id: int) -> list[tuple[str, str]]:
    await stack.writer.flush()
    rows = stack.db.conn.execute("SELECT kind, detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    return list(rows)


def test_alerts_of_one_key_share_one_incident(stack: Stack) -> None:
    feed(stack, T0, a("1"), a("2"))
    feed(stack, T0 + 5, a("3"))
    incident = current(stack)
    assert incident.status is IncidentStatus.OPEN
    assert len(incident.fingerprints) == 3
    assert incident.service == "api"
    assert stack.counters.get("itsmd_incidents_opened_total", pairs(service="api", priority="P3")) == 1


def test_other_key_opens_another_incident(stack: Stack) -> None:
    feed(stack, T0, a("1"), incoming(alertname="DiskFull", service="api", instance="1"))
    assert stack.correlator.open_by_service() == {"api": 2}


async def test_resolves_only_when_all_alerts_ended(stack: Stack) -> None:
    feed(stack, T0, a("1"), a("2"))
    feed(stack, T0 + 10, a("1", firing=False, ends_at=T0 + 9))
    incident = current(stack)
    assert incident.status is IncidentStatus.OPEN
    feed(stack, T0 + 20, a("2", firing=False, ends_at=T0 + 19))
    assert current(stack).status is IncidentStatus.RESOLVED
    assert incident.resolved_at == T0 + 19  # when its last alert ended, by the sender's resolve
    assert (
        stack.counters.get("itsmd_incidents_resolved_total", pairs(service="api", priority="P3", resolved_by="alerts"))
        == 1
    )
    kinds = [kind for kind, _ in await stored_timeline(stack, incident.id)]
    assert kinds == ["opened", "alert_firing", "alert_firing", "alert_resolved", "alert_resolved", "resolved"]


async def test_expiry_resolves_the_incident(stack: Stack) -> None:
    feed(stack, T0, a("1"))
    stack.correlator.handle(stack.table.expire(T0 + 10**6), T0 + 10**6)
    incident = current(stack)
    assert incident.status is IncidentStatus.RESOLVED
    timeline = await stored_timeline(stack, incident.id)
    kinds = [kind for kind, _ in timeline]
    # Noticed 10^6 s later, but the alert was last seen at T0: it ended then, within both SLA targets.
    assert kinds[-2:] == ["alert_expired", "resolved"]
    assert timeline[-1] == (
        "resolved",
        f'{{"by":"expiry","end_estimated":true,"end_source":"last_seen","ended_at":{T0}}}',
    )
    assert incident.resolved_at == T0
    assert incident.sla.breaches == set()


def test_firing_within_reopen_window_reopens_same_incident(stack: Stack) -> None:
    feed(stack, T0, a("1"))
    feed(stack, T0 + 10, a("1", firing=False, ends_at=T0 + 10))
    first = current(stack)
    feed(stack, T0 + 100, a("1", starts_at=T0 + 99))
    assert current(stack) is first
    assert first.status is IncidentStatus.OPEN
    assert first.reopen_count == 1
    assert first.resolved_at is None
    assert stack.counters.get("itsmd_incidents_opened_total", pairs(service="api", priority="P3")) == 1
    assert stack.counters.get("itsmd_incidents_reopened_total", (("service", "api"),)) == 1


def test_firing_after_reopen_window_opens_new_incident(stack: Stack) -> None:
    feed(stack, T0, a("1"))
    feed(stack, T0 + 10, a("1", firing=False, ends_at=T0 + 10))
    first = current(stack)
    feed(stack, T0 + 700, a("1", starts_at=T0 + 699))
    second = current(stack)
    assert second is not first
    assert second.id == first.id + 1
    assert first.status is IncidentStatus.RESOLVED


def test_missing_service_label_uses_default(stack: Stack) -> None:
    feed(stack, T0, incoming(alertname="X"))
    assert stack.correlator.open_by_service() == {"unknown": 1}


def test_key_quotes_label_values(stack: Stack) -> None:
    assert stack.correlator.key_of({"alertname": 'a",service="b', "service": "api"}) == (
        '{alertname="a\\",service=\\"b",service="api"}'
    )


def test_services_outside_the_catalogue_go_to_the_default_service(stack: Stack) -> None:
    for n, name in enumerate(("s1", "s2", "s3", "s4")):
        feed(stack, T0, incoming(alertname=f"X{n}", service=name))
    assert stack.correlator.open_by_service() == {"unknown": 4}
    services = stack.counters.label_values("itsmd_incidents_opened_total", "service")
    assert services == {"api", "db", "checkout", "postgres", "unknown"}


async def test_resolved_incidents_close_after_the_quiet_period_and_leave_memory(stack: Stack) -> None:
    feed(stack, T0, a("1"))
    feed(stack, T0 + 10, a("1", firing=False, ends_at=T0 + 10))
    await stack.writer.flush()
    assert stack.correlator.next_due() == T0 + 10 + 86400
    stack.correlator.run_due(T0 + 11)
    assert stack.correlator.forget_resolved(T0 + 11) == 0
    stack.correlator.run_due(T0 + 10 + 86400)
    assert current(stack).status is IncidentStatus.CLOSED
    await stack.writer.flush()
    assert stack.correlator.forget_resolved(T0 + 10 + 86400) == 1
    assert stack.correlator.incidents() == []
    assert stack.correlator.incident_for(KEY) is None
    [(status, closed_at)] = stack.db.conn.execute("SELECT status, closed_at FROM incidents").fetchall()
    assert (status, closed_at) == ("closed", T0 + 10 + 86400)


def test_listeners_hear_open_resolve_and_reopen_with_the_causing_labels(stack: Stack) -> None:
    heard: list[IncidentEvent] = []
    stack.correlator.subscribe(heard.append)
    feed(stack, T0, a("x"), a("y"))
    feed(stack, T0 + 10, a("x", firing=False, ends_at=T0 + 10), a("y", firing=False, ends_at=T0 + 10))
    feed(stack, T0 + 20, a("x", starts_at=T0 + 20))
    assert [(e.kind, e.incident_id, e.at) for e in heard] == [
        (IncidentEventKind.OPENED, 1, T0),
        (IncidentEventKind.RESOLVED, 1, T0 + 10),
        (IncidentEventKind.REOPENED, 1, T0 + 20),
    ]
    assert heard[0].labels["instance"] == "x"
    assert heard[0].service == "api"


async def test_notes_and_suspected_changes_go_on_the_timeline(stack: Stack) -> None:
    feed(stack, T0, a("x"))
    assert stack.correlator.add_note(1, T0 + 1, "runbook:restart", "breaker open")
    assert stack.correlator.link_change(1, 42, T0 + 2, "change 42 on api 3m before")
    assert not stack.correlator.add_note(99, T0, "someone", "no such incident")
    incident = stack.correlator.get(1)
    assert incident is not None and incident.suspected_change == 42
    await stack.writer.flush()
    kinds = [r[0] for r in stack.db.conn.execute("SELECT kind FROM timeline WHERE incident_id = 1 ORDER BY id")]
    assert kinds[-2:] == ["note", "suspected_change"]
