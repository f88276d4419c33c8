"""Incidents (first cut): the only code that changes incidents.

The first firing alert of a correlation key opens an incident; later alerts of that key attach to it; it
resolves when every attached alert has resolved or expired; a firing alert of the key within the reopen
window after that reopens it (same id) instead of opening another. Every transition goes on the timeline
in the same transaction as the alert change that caused it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from daemon.alerts.table import AlertTable
from daemon.alerts.transitions import Ended, Fired, Transition
from daemon.correlate.events import IncidentEvent, IncidentEventKind, IncidentListener
from daemon.correlate.rules import CorrelationRules
from daemon.metrics.counters import CounterStore
from daemon.model import Alert, Incident, IncidentStatus, TimelineEntry
from daemon.storage.database import Batch
from daemon.storage.rows import incident_row, timeline_row
from daemon.storage.writer import GroupCommitWriter

MAX_METRIC_SERVICES = 500
"""Services are label values from alerts: beyond this many distinct ones, metrics say service="other"."""


class Correlator:
    def __init__(
        self, writer: GroupCommitWriter, rules: CorrelationRules, alerts: AlertTable, counters: CounterStore
    ) -> None:
        self._writer = writer
        self.rules = rules
        self._alerts = alerts
        self._counters = counters
        self._by_id: dict[int, Incident] = {}
        self._by_key: dict[str, Incident] = {}
        self._next_id = 1
        self._dirty: dict[int, Incident] = {}
        self._links: dict[tuple[int, str, float], tuple[int, str, float, float, float | None]] = {}
        self._timeline: list[TimelineEntry] = []
        self._metric_services: set[str] = set()
        self._listeners: list[IncidentListener] = []
        writer.add_collector(self._collect)

    def subscribe(self, listener: IncidentListener) -> None:
        self._listeners.append(listener)

    def restore(self, incidents: Sequence[Incident], next_id: int) -> None:
        for incident in sorted(incidents, key=lambda i: i.id):
            self._by_id[incident.id] = incident
            self._by_key[incident.key] = incident
        self._next_id = next_id
        self._metric_services = self._counters.label_values("itsmd_incidents_opened_total", "service")

    # -- reads ----------------------------------------------------------------------------------------

    def incident_for(self, key: str) -> Incident | None:
        """The latest incident of a key, while it is open or can still be reopened."""
        return self._by_key.get(key)

    def get(self, incident_id: int) -> Incident | None:
        """An incident held in memory (open, or resolved and still inside the reopen window)."""
        return self._by_id.get(incident_id)

    def incidents(self) -> list[Incident]:
        """Incidents held in memory: open ones and those still inside the reopen window."""
        return list(self._by_id.values())

    def open_by_service(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for incident in self._by_id.values():
            if incident.status is IncidentStatus.OPEN:
                service = self.metric_service(incident.service)
                out[service] = out.get(service, 0) + 1
        return out

    def key_of(self, labels: dict[str, str]) -> str:
        return "{" + ",".join(f"{n}={json.dumps(labels.get(n, ''))}" for n in self.rules.group_by) + "}"

    def service_of(self, labels: dict[str, str]) -> str:
        return labels.get(self.rules.service_label) or self.rules.default_service

    def metric_service(self, service: str) -> str:
        if service in self._metric_services:
            return service
        if len(self._metric_services) < MAX_METRIC_SERVICES:
            self._metric_services.add(service)
            return service
        return "other"

    # -- changes --------------------------------------------------------------------------------------

    def handle(self, transitions: Sequence[Transition], now: float) -> None:
        for t in transitions:
            if isinstance(t, Fired):
                self._fired(t.alert, now)
            else:
                self._ended(t, now)

    def add_note(self, incident_id: int, now: float, author: str, text: str, *, kind: str = "note") -> bool:
        """Put a note from another stage (or a person) on the timeline; False if the incident is not in
        memory."""
        incident = self._by_id.get(incident_id)
        if incident is None:
            return False
        self._note(incident, now, kind, {"by": author, "text": text})
        return True

    def link_change(self, incident_id: int, change_id: int, now: float, reason: str) -> bool:
        """Record a change as the suspected cause of an incident."""
        incident = self._by_id.get(incident_id)
        if incident is None:
            return False
        incident.suspected_change = change_id
        self._note(incident, now, "suspected_change", {"change": change_id, "reason": reason})
        return True

    def forget_resolved(self, now: float) -> int:
        """Drop incidents from memory once they can no longer be reopened."""
        cutoff = now - self.rules.reopen_window
        gone = [
            i
            for i in self._by_id.values()
            if i.status is IncidentStatus.RESOLVED and (i.resolved_at or 0.0) < cutoff and i.id not in self._dirty
        ]
        for incident in gone:
            del self._by_id[incident.id]
            if self._by_key.get(incident.key) is incident:
                del self._by_key[incident.key]
        return len(gone)

    def _fired(self, alert: Alert, now: float) -> None:
        key = self.key_of(alert.labels)
        incident = self._by_key.get(key)
        if incident is not None and incident.status is IncidentStatus.RESOLVED:
            if now - (incident.resolved_at or now) <= self.rules.reopen_window:
                incident.status = IncidentStatus.OPEN
                incident.resolved_at = None
                incident.reopen_count += 1
                self._note(incident, now, "reopened", {"alert": alert.fingerprint})
                self._counters.inc("itsmd_incidents_reopened_total", self._service_labels(incident))
                self._emit(IncidentEventKind.REOPENED, incident, now, alert.labels)
            else:
                incident = None
        opened = incident is None
        if incident is None:
            incident = self._open(key, alert, now)
        incident.fingerprints.add(alert.fingerprint)
        incident.firing[alert.fingerprint] = (alert.starts_at, now)
        self._links[(incident.id, alert.fingerprint, alert.starts_at)] = (
            incident.id,
            alert.fingerprint,
            alert.starts_at,
            now,
            None,
        )
        self._note(incident, now, "alert_firing", {"alert": alert.fingerprint, "starts_at": alert.starts_at})
        self._alerts.set_incident(alert, incident.id)
        if opened:
            self._emit(IncidentEventKind.OPENED, incident, now, alert.labels)

    def _open(self, key: str, alert: Alert, now: float) -> Incident:
        service = self.service_of(alert.labels)
        title = f"{alert.labels.get('alertname', 'alert')} on {service}"
        incident = Incident(self._next_id, key, service, title, IncidentStatus.OPEN, opened_at=now)
        self._next_id += 1
        self._by_id[incident.id] = incident
        self._by_key[key] = incident
        self._note(incident, now, "opened", {"key": key, "alert": alert.fingerprint})
        labels = self._service_labels(incident)
        self._counters.inc("itsmd_incidents_opened_total", labels)
        self._counters.ensure("itsmd_incidents_resolved_total", labels)
        self._counters.ensure("itsmd_incidents_reopened_total", labels)
        return incident

    def _ended(self, t: Ended, now: float) -> None:
        incident = self._by_id.get(t.incident_id) if t.incident_id is not None else None
        if incident is None or incident.status is not IncidentStatus.OPEN:
            return
        fp = t.alert.fingerprint
        attached = incident.firing.pop(fp, None)
        if attached is None:
            return
        starts_at, attached_at = attached
        self._links[(incident.id, fp, starts_at)] = (incident.id, fp, starts_at, attached_at, t.at)
        kind = "alert_expired" if t.expired else "alert_resolved"
        self._note(incident, now, kind, {"alert": fp, "ended_at": t.at})
        if not incident.firing:
            incident.status = IncidentStatus.RESOLVED
            incident.resolved_at = now
            self._note(incident, now, "resolved", {"by": "expiry" if t.expired else "alerts"})
            self._counters.inc("itsmd_incidents_resolved_total", self._service_labels(incident))
            self._emit(IncidentEventKind.RESOLVED, incident, now, t.alert.labels)

    def _service_labels(self, incident: Incident) -> tuple[tuple[str, str], ...]:
        return (("service", self.metric_service(incident.service)),)

    def _emit(self, kind: IncidentEventKind, incident: Incident, now: float, labels: dict[str, str]) -> None:
        if self._listeners:
            event = IncidentEvent(kind, incident.id, incident.service, incident.priority, now, dict(labels))
            for listener in self._listeners:
                listener(event)

    def _note(self, incident: Incident, now: float, kind: str, detail: dict[str, object]) -> None:
        self._timeline.append(TimelineEntry(incident.id, now, kind, detail))
        self._dirty[incident.id] = incident
        self._writer.changed()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for incident_id, incident in self._dirty.items():
            batch.incidents[incident_id] = incident_row(incident)
        batch.links.update(self._links)
        batch.timeline.extend(timeline_row(t) for t in self._timeline)
        self._dirty.clear()
        self._links.clear()
        self._timeline.clear()
