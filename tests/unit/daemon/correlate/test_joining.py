"""The one open/attach/reopen decision, on its own: windows, statuses and the alert's own incident."""

from __future__ import annotations

import pytest

from daemon.correlate.joining import Join, decide
from daemon.correlate.rules import CorrelationRules
from daemon.model import Incident, IncidentStatus

RULE = CorrelationRules(window=600.0, reopen_window=300.0, close_after=900.0).resolved()[-1]
NOW = 10_000.0


def incident(status: IncidentStatus, *, last_attached_at: float = NOW, resolved_at: float | None = None) -> Incident:
    found = Incident(7, "k", "api", "t", status, opened_at=0.0, last_attached_at=last_attached_at)
    found.resolved_at = resolved_at
    found.fingerprints.add("own")
    return found


def test_no_incident_opens() -> None:
    assert decide(None, None, "fp", NOW).join is Join.OPEN


@pytest.mark.parametrize("status", [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED])
@pytest.mark.parametrize(("idle", "join"), [(0.0, Join.ATTACH), (600.0, Join.ATTACH), (600.5, Join.OPEN)])
def test_active_incident_takes_an_alert_within_the_window(status: IncidentStatus, idle: float, join: Join) -> None:
    latest = incident(status, last_attached_at=NOW - idle)
    decision = decide(latest, RULE, "new", NOW)
    assert decision.join is join
    assert decision.incident is (latest if join is Join.ATTACH else None)


def test_an_alert_of_its_own_attaches_however_idle() -> None:
    latest = incident(IncidentStatus.OPEN, last_attached_at=0.0)
    assert decide(latest, RULE, "own", NOW).join is Join.ATTACH


def test_window_zero_is_no_limit() -> None:
    rule = CorrelationRules(window=0.0).resolved()[-1]
    assert decide(incident(IncidentStatus.OPEN, last_attached_at=0.0), rule, "new", NOW).join is Join.ATTACH


@pytest.mark.parametrize(("since", "join"), [(0.0, Join.REOPEN), (300.0, Join.REOPEN), (300.5, Join.OPEN)])
def test_resolved_incident_reopens_within_the_reopen_window(since: float, join: Join) -> None:
    latest = incident(IncidentStatus.RESOLVED, resolved_at=NOW - since)
    decision = decide(latest, RULE, "own", NOW)
    assert decision.join is join
    assert decision.incident is (latest if join is Join.REOPEN else None)


def test_closed_incident_is_final() -> None:
    decision = decide(incident(IncidentStatus.CLOSED, resolved_at=NOW), RULE, "own", NOW)
    assert (decision.join, decision.incident, decision.why) == (Join.OPEN, None, "incident 7 is closed")
