"""Incident events start runbooks: opened, repeated, or a known error whose problem names a workaround.

The correlator calls `on_incident_event` synchronously inside the request or sweep that caused the event, so
starting a run (which only records it and schedules its task) lands in the same commit as the incident's
transition. A run the engine refuses (a label value that fails its param's pattern, a runbook that needs an
integration that is not configured) is noted on the incident's timeline with the reason; it never raises into
the ingest path. When the incident resolves, its runs that have not started changing anything yet (pending,
waiting for a lock or an approval) are cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from daemon.clock import Clock
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.incidents import Correlator
from daemon.errors import ItsmdError
from daemon.runbook.engine import Engine, RunMode
from daemon.runbook.library import LoadedRunbook

log = logging.getLogger(__name__)

AUTHOR = "runbooks"
TRIGGER_OF: dict[IncidentEventKind, str] = {
    IncidentEventKind.OPENED: "incident_opened",
    IncidentEventKind.REOPENED: "incident_opened",
    IncidentEventKind.REPEATED: "repeated",
    IncidentEventKind.KNOWN_ERROR: "known_error",
}


def params_from_labels(runbook: LoadedRunbook, labels: Mapping[str, str]) -> dict[str, str]:
    """Each param's value from its label (by default the param's own name). Only labels that are present are
    taken: the engine fills defaults, refuses missing required ones and checks every value's pattern."""
    out: dict[str, str] = {}
    for name, param in runbook.spec.params.items():
        value = labels.get(param.label or name)
        if value is not None:
            out[name] = value
    return out


class Triggers:
    def __init__(self, engine: Engine, correlator: Correlator, clock: Clock) -> None:
        self._engine = engine
        self._correlator = correlator
        self._clock = clock

    def on_incident_event(self, event: IncidentEvent) -> None:
        if event.kind is IncidentEventKind.RESOLVED:
            self._cancel(event)
            return
        trigger = TRIGGER_OF.get(event.kind)
        if trigger is None:
            return
        for runbook in self._engine.library.matching(event):
            self._start(runbook, event, trigger)

    def _start(self, runbook: LoadedRunbook, event: IncidentEvent, trigger: str) -> None:
        name = runbook.spec.name
        try:
            run = self._engine.start(
                name,
                params_from_labels(runbook, event.labels),
                mode=RunMode.LIVE,
                trigger=trigger,
                requested_by=f"trigger:{trigger}",
                incident_id=event.incident_id,
                service=event.service,
            )
        except ItsmdError as exc:
            # RunRefused names the param and its pattern; an untrusted label value is never echoed beyond that.
            text = f"runbook {name} not started: {getattr(exc, 'message', None) or exc}"
            log.warning("incident %d: %s", event.incident_id, text)
            self._note(event.incident_id, text, "runbook_refused")
            return
        log.info("incident %d: runbook %s started as run %d (%s)", event.incident_id, name, run.id, trigger)
        self._note(event.incident_id, f"runbook {name} started as run {run.id} ({trigger})", "runbook_started")

    def _cancel(self, event: IncidentEvent) -> None:
        reason = f"incident {event.incident_id} resolved before the run started"
        for run in self._engine.cancel_for_incident(event.incident_id, reason):
            self._note(
                event.incident_id, f"run {run.id} of runbook {run.runbook} cancelled: {reason}", "runbook_cancelled"
            )

    def _note(self, incident_id: int, text: str, kind: str) -> None:
        self._correlator.add_note(incident_id, self._clock.now(), AUTHOR, text, kind=kind)
