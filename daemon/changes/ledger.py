"""The change ledger: the only code that creates or changes change records.

It listens to the runbook engine (a live or drill run becomes a change when it is created; its transitions
become the change's audit events; its terminal status closes the change with an outcome) and to the correlator
(an incident that opens on a service soon after a change there is linked to that change as its suspected
cause). Listeners run synchronously inside the transition that caused them, so the change rows land in the
same write batch as the run's journal entry or the incident's opening.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from daemon.changes.model import (
    CHANGE_MODES,
    NO_SERVICE,
    OUTCOME_OF_STATUS,
    Change,
    ChangeOutcome,
    ChangePolicy,
    ChangeType,
    change_type_of,
)
from daemon.clock import Clock
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.correlate.incidents import Correlator
from daemon.metrics.counters import CounterStore
from daemon.runbook.engine import Run, RunEvent
from daemon.storage.changes import EVENT, LINK, UPSERT, ChangeSnapshot, change_row, event_row
from daemon.storage.database import Batch
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

CHANGES_TOTAL = "itsmd_changes_total"
CAUSING_INCIDENTS = "itsmd_changes_causing_incidents_total"
LINKING_EVENTS = frozenset({IncidentEventKind.OPENED, IncidentEventKind.REOPENED})

PolicyOf = Callable[[str], ChangePolicy]


class ChangeLedger:
    def __init__(
        self,
        writer: GroupCommitWriter,
        counters: CounterStore,
        correlator: Correlator,
        clock: Clock,
        *,
        suspect_window: float,
        policy_of: PolicyOf,
    ) -> None:
        self._writer = writer
        self._counters = counters
        self._correlator = correlator
        self._clock = clock
        self.suspect_window = suspect_window
        self._policy_of = policy_of
        self._by_id: dict[int, Change] = {}
        self._by_run: dict[int, Change] = {}
        self._next_id = 1
        self._dirty: dict[int, Change] = {}
        self._events: list[tuple[Any, ...]] = []
        self._links: list[tuple[Any, ...]] = []
        writer.add_collector(self._collect)

    def restore(self, snapshot: ChangeSnapshot) -> None:
        for change in snapshot.changes:
            self._by_id[change.id] = change
            self._by_run[change.run_id] = change
        self._next_id = snapshot.next_id

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, change_id: int) -> Change | None:
        """A change held in memory: open, or active within the suspect window."""
        return self._by_id.get(change_id)

    def for_run(self, run_id: int) -> Change | None:
        return self._by_run.get(run_id)

    def changes(self) -> list[Change]:
        return list(self._by_id.values())

    def metric_service(self, service: str | None) -> str:
        return self._correlator.metric_service(service) if service else NO_SERVICE

    # -- run events -----------------------------------------------------------------------------------

    def on_run_event(self, event: RunEvent) -> None:
        run = event.run
        if str(run.mode) not in CHANGE_MODES:
            return
        status = str(run.status)
        change = self._by_run.get(run.id)
        if change is None:
            if event.kind != "created" and status in OUTCOME_OF_STATUS:
                return  # an old run's change, closed and out of memory: nothing left to record
            change = self._open(run)
        elif change.closed:
            return
        else:
            self._note_approval(change, run)
            if status == change.run_status:
                return
            now = self._clock.now()
            self._record(change, now, "status", {"from": change.run_status, "to": status, "reason": run.reason})
            change.run_status = status
            change.reason = run.reason or ""
            if change.started_at is None and run.started_at is not None:
                change.started_at = run.started_at
        outcome = OUTCOME_OF_STATUS.get(status)
        if outcome is not None:
            self._close(change, outcome, run.ended_at if run.ended_at is not None else self._clock.now())

    def _note_approval(self, change: Change, run: Run) -> None:
        """The run's approval decision, once made, is evidence on its change (and an event of it)."""
        asked = run.approval
        if asked is None or asked.decision is None or change.approval is not None:
            return
        at = asked.decided_at if asked.decided_at is not None else self._clock.now()
        change.approval = {"decision": asked.decision, "by": asked.by, "reason": asked.reason, "at": at}
        if asked.on_behalf_of:
            change.approval["on_behalf_of"] = asked.on_behalf_of
        self._record(change, at, "approval", dict(change.approval))

    def annotate(self, run_id: int, at: float, by: str, text: str, *, on_behalf_of: str | None = None) -> bool:
        """Add a principal's note (why a change was requested, decided, and for whom) to the change of a run;
        False if none."""
        change = self._by_run.get(run_id)
        if change is None:
            return False
        behalf = {"on_behalf_of": on_behalf_of} if on_behalf_of else {}
        self._record(change, at, "note", {"by": by, "text": text, **behalf})
        return True

    def _open(self, run: Run) -> Change:
        try:
            policy = self._policy_of(run.runbook)
        except KeyError:
            # The run outlived its runbook (deleted on reload, or recovered after a restart): record it anyway.
            policy = ChangePolicy(needs_approval=False, risk="unknown")
        change = Change(
            id=self._next_id,
            run_id=run.id,
            runbook=run.runbook,
            runbook_version=run.version,
            mode=str(run.mode),
            change_type=change_type_of(run.emergency, policy),
            risk=policy.risk,
            service=run.service,
            incident_id=run.incident_id,
            requested_by=run.requested_by,
            trigger=run.trigger,
            created_at=run.created_at,
            run_status=str(run.status),
            reason=run.reason or "",
            started_at=run.started_at,
        )
        self._next_id += 1
        self._by_id[change.id] = change
        self._by_run[run.id] = change
        self._record(
            change,
            run.created_at,
            "created",
            {"type": change.change_type.value, "risk": change.risk, "params": dict(run.params)},
        )
        self._forget_old(run.created_at)
        return change

    def _close(self, change: Change, outcome: ChangeOutcome, at: float) -> None:
        change.outcome = outcome
        change.ended_at = at
        self._counters.inc(
            CHANGES_TOTAL,
            (
                ("change_type", change.change_type.value),
                ("outcome", outcome.value),
                ("service", self.metric_service(change.service)),
            ),
        )
        log.info("change %d (run %d, %s) closed: %s", change.id, change.run_id, change.runbook, outcome.value)

    # -- incident events ------------------------------------------------------------------------------

    def on_incident_event(self, event: IncidentEvent) -> None:
        if event.kind not in LINKING_EVENTS:
            return
        suspect = self.suspect_for(event.service, event.at, exclude_incident=event.incident_id)
        if suspect is None or event.incident_id in suspect.suspected_incidents:
            return
        when = "in progress" if suspect.ended_at is None else f"ended {event.at - suspect.ended_at:.0f}s before"
        reason = f"change {suspect.id} (runbook {suspect.runbook}) on service {event.service}, {when}"
        if not self._correlator.link_change(event.incident_id, suspect.id, event.at, reason):
            return
        suspect.suspected_incidents.append(event.incident_id)
        self._links.append((suspect.id, event.incident_id, event.at, reason))
        self._record(suspect, event.at, "suspected_cause", {"incident": event.incident_id, "reason": reason})
        self._counters.inc(CAUSING_INCIDENTS, (("service", self.metric_service(suspect.service)),))

    def ensure_series(self, services: Iterable[str]) -> None:
        """Change counters at 0 for every catalogue service (and changes made outside any service), so
        dashboards show no gap before the first change."""
        for service in [*services, NO_SERVICE]:
            self._counters.ensure(CAUSING_INCIDENTS, (("service", service),))
            for change_type in ChangeType:
                for outcome in ChangeOutcome:
                    self._counters.ensure(
                        CHANGES_TOTAL,
                        (("change_type", change_type.value), ("outcome", outcome.value), ("service", service)),
                    )

    def suspect_for(self, service: str, at: float, *, exclude_incident: int | None = None) -> Change | None:
        """The latest change on `service` that started before `at` and was in progress at some time within the
        suspect window before it; None if there is none. A change made for the incident itself is no suspect."""
        since = at - self.suspect_window
        best: Change | None = None
        for change in self._by_id.values():
            if change.service != service or change.incident_id == exclude_incident:
                continue
            if change.created_at >= at or change.outcome is ChangeOutcome.SKIPPED:
                continue
            if change.outcome in (ChangeOutcome.REJECTED, ChangeOutcome.CANCELLED) and change.started_at is None:
                continue  # never ran, changed nothing
            if change.ended_at is not None and change.ended_at < since:
                continue
            if best is None or change.last_activity() > best.last_activity():
                best = change
        return best

    # -- bookkeeping ----------------------------------------------------------------------------------

    def _record(self, change: Change, at: float, kind: str, detail: dict[str, Any]) -> None:
        self._events.append(event_row(change.id, at, kind, detail))
        self._dirty[change.id] = change
        self._writer.changed()

    def _forget_old(self, now: float) -> None:
        """Closed changes leave memory once no incident can be linked to them any more; the store keeps them."""
        cutoff = now - self.suspect_window
        for change in [
            c for c in self._by_id.values() if c.closed and (c.ended_at or 0.0) < cutoff and c.id not in self._dirty
        ]:
            del self._by_id[change.id]
            self._by_run.pop(change.run_id, None)

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for change_id, change in self._dirty.items():
            batch.upsert(UPSERT, change_id, change_row(change))
        for row in self._events:
            batch.append(EVENT, row)
        for row in self._links:
            batch.append(LINK, row)
        self._dirty.clear()
        self._events.clear()
        self._links.clear()
