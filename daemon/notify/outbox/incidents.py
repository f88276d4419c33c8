"""Incident events of the correlator as outbox events. Runs inside the correlator's change (see events.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.model import Incident
from daemon.notify.outbox.config import EventKind
from daemon.notify.outbox.outbox import Event, Outbox

KIND_OF = {
    IncidentEventKind.OPENED: EventKind.INCIDENT_OPENED,
    IncidentEventKind.REOPENED: EventKind.INCIDENT_REOPENED,
    IncidentEventKind.ACKNOWLEDGED: EventKind.INCIDENT_ACKNOWLEDGED,
    IncidentEventKind.PRIORITY_RAISED: EventKind.INCIDENT_PRIORITY_RAISED,
    IncidentEventKind.RESOLVED: EventKind.INCIDENT_RESOLVED,
    IncidentEventKind.CLOSED: EventKind.INCIDENT_CLOSED,
    IncidentEventKind.SLA_AT_RISK: EventKind.SLA_AT_RISK,
    IncidentEventKind.SLA_BREACHED: EventKind.SLA_BREACHED,
    IncidentEventKind.REPEATED: EventKind.INCIDENT_REPEATED,
    IncidentEventKind.KNOWN_ERROR: EventKind.INCIDENT_KNOWN_ERROR,
    IncidentEventKind.EXTERNAL: EventKind.INCIDENT_EXTERNAL,
    IncidentEventKind.ASSIGNED: EventKind.INCIDENT_ASSIGNED,
}


class IncidentNotices:
    def __init__(self, outbox: Outbox, lookup: Callable[[int], Incident | None]) -> None:
        self._outbox = outbox
        self._lookup = lookup

    def on_incident_event(self, event: IncidentEvent) -> None:
        kind = KIND_OF.get(event.kind)
        if kind is None:
            return
        incident = self._lookup(event.incident_id)
        data: dict[str, Any] = {"labels": dict(event.labels)}
        if incident is not None:
            data["incident"] = {
                "id": incident.id,
                "title": incident.title,
                "status": incident.status.value,
                "opened_at": incident.opened_at,
                "problem_id": incident.problem_id,
                "external": incident.external,
                "assignee": incident.assignee,
                "team": incident.team,
            }
        for name, value in (
            ("problem_id", event.problem_id),
            ("runbook", event.runbook),
            ("ended_at", event.ended_at),
            ("target", event.target),
            ("share", event.share),
            ("deadline", event.deadline),
        ):
            if value is not None:
                data[name] = value
        self._outbox.publish(Event(kind, event.at, event.service, event.priority, event.incident_id, data))
