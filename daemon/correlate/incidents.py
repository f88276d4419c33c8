"""Incidents: the only code that changes incidents.

Alerts: the first firing alert of a correlation key opens an incident; later alerts of that key attach while
it is active and took an alert within the rule's window; it resolves when every attached alert has resolved
or expired (held open while one of them flaps); a firing alert of the key within the reopen window after
that reopens it (same id). People: acknowledge, resolve (refused while alerts fire unless forced), close,
reopen, notes and assignment (what an assignment means is in `assignment`). Time (the scheduler calls
`run_due`): SLA targets at risk and breached, flapping that stopped, closing after the quiet period. Every
change goes on the timeline and into the audit trail, in the same transaction as its cause (a target at risk
is a moment, not a change: it goes on the timeline only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from daemon.alerts.table import AlertTable
from daemon.alerts.transitions import Ended, Fired, Transition
from daemon.audit import SYSTEM, AuditLog
from daemon.catalogue.windows import MaintenanceWindow, in_maintenance
from daemon.correlate import assignment, sla
from daemon.correlate.events import IncidentEvent, IncidentEventKind, IncidentListener
from daemon.correlate.flapping import FlapTracker
from daemon.correlate.joining import Decision, Join, decide
from daemon.correlate.metrics import IncidentMetrics
from daemon.correlate.priority import rank
from daemon.correlate.rules import CorrelationRules
from daemon.correlate.ruleset import Classification, RuleSet
from daemon.errors import Conflict, NotFound
from daemon.metrics.counters import CounterStore
from daemon.model import Alert, Incident, IncidentStatus, ProblemStatus, TimelineEntry
from daemon.problems.manager import Problems
from daemon.storage.database import Batch
from daemon.storage.incidents import INCIDENT, LINK, TIMELINE, incident_row, timeline_row
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

ACTIONS: dict[str, tuple[IncidentStatus, ...]] = {
    "acknowledge": (IncidentStatus.OPEN,),
    "resolve": (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
    "reopen": (IncidentStatus.RESOLVED,),
    "close": (IncidentStatus.RESOLVED,),
}


def allowed_actions(status: IncidentStatus) -> list[str]:
    return [a for a, sources in ACTIONS.items() if status in sources]


def _behalf(source: str | dict[str, object] | None) -> dict[str, object]:
    """The `on_behalf_of` entry of a timeline detail or audit record, when a request named one."""
    value = source.get("on_behalf_of") if isinstance(source, dict) else source
    return {"on_behalf_of": value} if value else {}


def snapshot(i: Incident) -> dict[str, object]:
    """The fields an audit event compares before and after."""
    return {
        "status": i.status.value,
        "priority": i.priority,
        "service": i.service,
        "title": i.title,
        "acknowledged_at": i.acknowledged_at,
        "resolved_at": i.resolved_at,
        "closed_at": i.closed_at,
        "resolved_by": i.resolved_by,
        "reopen_count": i.reopen_count,
        "respond_by": i.sla.respond_by,
        "resolve_by": i.sla.resolve_by,
        "sla_breaches": sorted(i.sla.breaches),
        "flapping": sorted(i.flapping),
        "problem_id": i.problem_id,
        "suspected_change": i.suspected_change,
        "assignee": i.assignee,
        "team": i.team,
        "alerts": len(i.fingerprints),
    }


class Correlator:
    def __init__(
        self,
        writer: GroupCommitWriter,
        rules: RuleSet | CorrelationRules,
        alerts: AlertTable,
        counters: CounterStore,
        *,
        audit: AuditLog | None = None,
        problems: Problems | None = None,
        at_risk_share: Callable[[str], float | None] = lambda priority: None,
    ) -> None:
        self._writer = writer
        self._at_risk_share = at_risk_share
        """Share of a target used at which it is at risk, by priority (`notify.publish.sla_at_risk`, which
        the published ItsmdSlaAtRisk uses too); None: never."""
        self.ruleset = rules if isinstance(rules, RuleSet) else RuleSet(correlation=rules)
        self._alerts = alerts
        self._counters = counters
        self.audit = audit or AuditLog(writer)
        self.problems = problems or Problems(writer, counters, self.audit)
        self.metrics = IncidentMetrics(counters, self.ruleset)
        self.flaps = FlapTracker()
        self._by_id: dict[int, Incident] = {}
        self._by_key: dict[str, Incident] = {}
        self._next_id = 1
        self._dirty: dict[int, Incident] = {}
        self._links: dict[tuple[int, str, float], tuple[int, str, float, float, float | None]] = {}
        self._timeline: list[TimelineEntry] = []
        self._listeners: list[IncidentListener] = []
        self.on_due: Callable[[float], None] = lambda at: None
        """Told the time of every new deadline, so the scheduler can wake up for it."""
        writer.add_collector(self._collect)

    @property
    def rules(self) -> CorrelationRules:
        return self.ruleset.correlation

    def set_rules(self, ruleset: RuleSet, now: float | None = None) -> None:
        """New rules apply to alerts from now on; incidents keep the service, priority and targets they got.
        Their deadlines follow the new maintenance windows (a window added for tonight moves them)."""
        self.ruleset = ruleset
        self.metrics.set_rules(ruleset)
        if now is not None:
            for incident in self._by_id.values():
                if not incident.status.active:
                    continue
                before = snapshot(incident)
                sla.recompute(incident, self._windows(incident), share=self._share(incident))
                after = snapshot(incident)
                if after != before:
                    self._note(
                        incident,
                        now,
                        "sla_recomputed",
                        {"respond_by": incident.sla.respond_by, "resolve_by": incident.sla.resolve_by},
                    )
                    self.audit.record(
                        now, SYSTEM, "incident", incident.id, "sla_recomputed", before=before, after=after
                    )
        self.on_due(0.0)

    def subscribe(self, listener: IncidentListener) -> None:
        self._listeners.append(listener)

    def restore(self, incidents: Sequence[Incident], next_id: int, now: float) -> None:
        for incident in sorted(incidents, key=lambda i: i.id):
            self._by_id[incident.id] = incident
            self._by_key[incident.key] = incident
            # Derived, not stored: from the stored clock, as the deadlines were.
            sla.recompute_risk(incident, self._windows(incident), self._share(incident))
            # The changes a flapping mark was counted from are not stored; without a tracker entry nothing
            # would ever stop it, and an incident held by it would stay open for good.
            for fingerprint in incident.flapping:
                self.flaps.rearm(fingerprint, now, self.ruleset.rule_named(incident.rule).flapping)
        self._next_id = next_id
        self._due(self.flaps.next_change())

    # -- reads ----------------------------------------------------------------------------------------

    def incident_for(self, key: str) -> Incident | None:
        """The latest incident of a key, while it is active or not yet closed."""
        return self._by_key.get(key)

    def get(self, incident_id: int) -> Incident | None:
        """An incident held in memory: every incident that is not closed."""
        return self._by_id.get(incident_id)

    def incidents(self) -> list[Incident]:
        return list(self._by_id.values())

    def open_by_service(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for incident in self._by_id.values():
            if incident.status.active:
                service = self.metrics.service(incident.service)
                out[service] = out.get(service, 0) + 1
        return out

    def open_by_service_priority(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for incident in self._by_id.values():
            if incident.status.active:
                key = (self.metrics.service(incident.service), incident.priority)
                out[key] = out.get(key, 0) + 1
        return out

    def key_of(self, labels: dict[str, str]) -> str:
        return self.ruleset.classify(labels).key

    def service_of(self, labels: dict[str, str]) -> str:
        return self.ruleset.catalogue.match(labels)[0].name

    def metric_service(self, service: str) -> str:
        return self.metrics.service(service)

    def sla_paused_by(self, incident_id: int, now: float) -> str | None:
        """Why an active incident's SLA clock stands still now (status | maintenance), None if it runs."""
        incident = self._by_id.get(incident_id)
        if incident is None:
            return None
        return sla.paused_by(incident, now, self._windows(incident), self.ruleset.catalogue.pause_statuses)

    def is_flapping(self, fingerprint: str) -> bool:
        return self.flaps.is_flapping(fingerprint)

    # -- alert-driven changes -------------------------------------------------------------------------

    def handle(self, transitions: Sequence[Transition], now: float) -> None:
        for t in transitions:
            if isinstance(t, Fired):
                self._fired(t.alert, now, revived=t.revived)
            else:
                self._ended(t, now)

    def decide(self, key: str, fingerprint: str, now: float, *, revived_of: int | None = None) -> Decision:
        """What an alert of `key` firing now does: the decision `_fired` applies and explain reports."""
        latest = self._by_key.get(key)
        rule = self.ruleset.rule_named(latest.rule) if latest is not None else None
        return decide(latest, rule, fingerprint, now, revived_of=revived_of)

    def _fired(self, alert: Alert, now: float, *, revived: bool = False) -> None:
        c = self.ruleset.classify(alert.labels, alert.annotations)
        decision = self.decide(c.key, alert.fingerprint, now, revived_of=alert.incident_id if revived else None)
        incident = decision.incident
        if incident is None:
            incident = self._open(c, alert, now)
        elif decision.join is Join.REOPEN:
            detail: dict[str, object] = {"alert": alert.fingerprint}
            if decision.revived:
                detail["revived"] = True
            self._reopen(incident, now, SYSTEM, detail, alert.labels)
        self._attach(incident, alert, c, now)
        if decision.join is Join.OPEN:
            self._after_open(incident, c, alert, now)

    def _open(self, c: Classification, alert: Alert, now: float) -> Incident:
        incident = Incident(
            self._next_id,
            c.key,
            c.service.name,
            self.ruleset.title(c, alert.labels, alert.annotations),
            IncidentStatus.OPEN,
            opened_at=now,
            priority=c.priority,
            rule=c.rule.name,
            signature=c.signature,
            last_attached_at=now,
            team=c.service.team or None,
        )
        self._next_id += 1
        self._by_id[incident.id] = incident
        self._by_key[c.key] = incident
        sla.set_targets(incident.sla, c.targets)
        windows = self._windows(incident)
        sla.update(incident, now, windows, self.ruleset.catalogue.pause_statuses, share=self._share(incident))
        a = c.assessment
        self._note(
            incident,
            now,
            "opened",
            {
                "key": c.key,
                "alert": alert.fingerprint,
                "rule": c.rule.name,
                "priority": c.priority,
                "impact": a.impact,
                "urgency": a.urgency,
                "in_maintenance": in_maintenance(windows, now),
            },
        )
        self.audit.record(now, SYSTEM, "incident", incident.id, "opened", before=None, after=snapshot(incident))
        self.metrics.opened(incident)
        self._due(sla.next_deadline(incident))
        return incident

    def _after_open(self, incident: Incident, c: Classification, alert: Alert, now: float) -> None:
        self._emit(IncidentEventKind.OPENED, incident, now, alert.labels)
        link = self.problems.on_incident(incident, c.rule.recurrence, now, self.metrics.service(incident.service))
        if link is None:
            return
        problem = link.problem
        before = snapshot(incident)
        incident.problem_id = problem.id
        known = problem.status is ProblemStatus.KNOWN_ERROR
        if known:
            incident.workaround = problem.workaround
        self._note(
            incident,
            now,
            "known_error" if known else "recurrence",
            {
                "problem": problem.id,
                "problem_status": problem.status.value,
                "problem_opened": link.opened,
                **({"workaround": problem.workaround, "runbook": problem.runbook} if known else {}),
            },
        )
        self.audit.record(
            now, SYSTEM, "incident", incident.id, "problem_linked", before=before, after=snapshot(incident)
        )
        self.metrics.repeated(incident)
        self._emit(IncidentEventKind.REPEATED, incident, now, alert.labels, problem_id=problem.id)
        if known:
            self._emit(
                IncidentEventKind.KNOWN_ERROR,
                incident,
                now,
                alert.labels,
                problem_id=problem.id,
                runbook=problem.runbook,
            )

    def _attach(self, incident: Incident, alert: Alert, c: Classification, now: float) -> None:
        incident.fingerprints.add(alert.fingerprint)
        incident.firing[alert.fingerprint] = (alert.starts_at, now)
        incident.last_attached_at = now
        self._links[(incident.id, alert.fingerprint, alert.starts_at)] = (
            incident.id,
            alert.fingerprint,
            alert.starts_at,
            now,
            None,
        )
        self._note(incident, now, "alert_firing", {"alert": alert.fingerprint, "starts_at": alert.starts_at})
        self._alerts.set_incident(alert, incident.id)
        if rank(c.priority) < rank(incident.priority):
            self._raise_priority(incident, c, alert, now)
        self._flap(incident, alert.fingerprint, now)

    def _raise_priority(self, incident: Incident, c: Classification, alert: Alert, now: float) -> None:
        before = snapshot(incident)
        old = incident.priority
        incident.priority = c.priority
        service = self.ruleset.catalogue.get(incident.service)
        sla.set_targets(incident.sla, self.ruleset.catalogue.target(service, c.priority))
        sla.recompute(incident, self._windows(incident), share=self._share(incident))
        self._note(
            incident,
            now,
            "priority_raised",
            {"from": old, "to": c.priority, "alert": alert.fingerprint, "urgency": c.assessment.urgency},
        )
        self.audit.record(
            now, SYSTEM, "incident", incident.id, "priority_raised", before=before, after=snapshot(incident)
        )
        self._emit(IncidentEventKind.PRIORITY_RAISED, incident, now, alert.labels)
        self._due(sla.next_deadline(incident))

    def _ended(self, t: Ended, now: float) -> None:
        incident = self._by_id.get(t.incident_id) if t.incident_id is not None else None
        if incident is None:
            return
        fp = t.alert.fingerprint
        attached = incident.firing.pop(fp, None)
        if attached is None:
            return
        starts_at, attached_at = attached
        self._links[(incident.id, fp, starts_at)] = (incident.id, fp, starts_at, attached_at, t.at)
        detail: dict[str, object] = {"alert": fp, "ended_at": t.at}
        if t.estimated:
            detail.update(end_estimated=True, end_source=t.end_source)
            if t.end_note:
                detail["end_note"] = t.end_note
        self._note(incident, now, "alert_expired" if t.expired else "alert_resolved", detail)
        # For the incident an alert cannot have ended before it joined, nor after we heard of it.
        end = min(max(t.at, attached_at), now)
        if incident.ended_at is None or end >= incident.ended_at:
            incident.ended_at, incident.end_source = end, t.end_source
        self._flap(incident, fp, now)
        if not incident.status.active or incident.firing:
            return
        if incident.flapping:
            self._note(incident, now, "resolution_held", {"flapping": sorted(incident.flapping)})
            return
        self._resolve_by_alerts(incident, now, "expiry" if t.expired else "alerts", {}, t.alert.labels)

    def _resolve_by_alerts(
        self, incident: Incident, now: float, resolved_by: str, detail: dict[str, object], labels: dict[str, str]
    ) -> None:
        """Every alert has ended: the incident ended when the last of them did (which may be well before now,
        after an expiry or a flapping hold), estimated when that alert's end was."""
        self._resolve(
            incident,
            now,
            SYSTEM,
            resolved_by,
            detail=detail,
            labels=labels,
            end=incident.ended_at,
            end_source=incident.end_source,
        )

    def _flap(self, incident: Incident, fingerprint: str, now: float) -> None:
        rule = self.ruleset.rule_named(incident.rule)
        if self.flaps.record(fingerprint, now, rule.flapping):
            before = snapshot(incident)
            incident.flapping.add(fingerprint)
            self._note(incident, now, "flapping_started", {"alert": fingerprint})
            self.audit.record(
                now, SYSTEM, "incident", incident.id, "flapping_started", before=before, after=snapshot(incident)
            )
        elif self.flaps.is_flapping(fingerprint) and fingerprint not in incident.flapping:
            incident.flapping.add(fingerprint)
            self._mark(incident)
        # This alert's own stop: the scheduler keeps the earliest it was told of, so scanning every flapping
        # alert here (once per change) would make a flapping storm quadratic.
        self._due(self.flaps.stops_at(fingerprint))

    # -- people ---------------------------------------------------------------------------------------

    def act(
        self,
        incident_id: int,
        action: str,
        now: float,
        by: str,
        reason: str = "",
        *,
        force: bool = False,
        on_behalf_of: str | None = None,
    ) -> Incident:
        """acknowledge | resolve | reopen | close, by an authenticated principal (`on_behalf_of`: whom the
        request says it acts for). NotFound when not in memory (closed or unknown), Conflict when not allowed from the
        current status (naming the allowed actions) or alerts still firing."""
        incident = self._require(incident_id)
        if action not in ACTIONS:
            raise NotFound("not_found", f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        if incident.status not in ACTIONS[action]:
            allowed = allowed_actions(incident.status)
            raise Conflict(
                "invalid_transition",
                f"incident {incident_id} is {incident.status.value}: cannot {action}; "
                f"allowed: {', '.join(allowed) or 'none'}",
            )
        detail: dict[str, object] = {"by": by, "reason": reason, **_behalf(on_behalf_of)}
        if action == "acknowledge":
            self._acknowledge(incident, now, by, detail)
        elif action == "resolve":
            if incident.firing and not force:
                raise Conflict(
                    "alerts_firing",
                    f"incident {incident_id} has {len(incident.firing)} alert(s) still firing "
                    f"({', '.join(sorted(incident.firing)[:10])}); resolve them first or pass force: true",
                )
            if incident.firing:
                detail["forced"] = True
                detail["firing"] = sorted(incident.firing)
            self._resolve(incident, now, by, "manual", detail=detail, labels={})
        elif action == "reopen":
            self._reopen(incident, now, by, detail, {})
        else:
            self._close(incident, now, by, detail)
        return incident

    def assign(
        self,
        incident_id: int,
        now: float,
        by: str,
        *,
        assignee: str | assignment.Keep | None = assignment.KEEP,
        team: str | assignment.Keep = assignment.KEEP,
        reason: str = "",
        on_behalf_of: str | None = None,
    ) -> Incident:
        """Give an incident to a principal (`assignee`, None: nobody) and/or a team, by an authenticated
        principal; KEEP leaves a field as it is. Nothing is recorded when nothing changes. RequestError: 404
        not in memory (closed or unknown), 409 closed, 400 a team no catalogue service has."""
        incident = self._require(incident_id)
        if incident.status is IncidentStatus.CLOSED:
            raise Conflict("invalid_transition", f"incident {incident_id} is closed; allowed: none")
        planned = assignment.plan(incident, assignee, team, self.ruleset.catalogue)
        if planned is None:
            return incident
        before = snapshot(incident)
        incident.assignee, incident.team = planned.assignee, planned.team
        detail: dict[str, object] = {"by": by, **planned.detail, "reason": reason, **_behalf(on_behalf_of)}
        self._note(incident, now, planned.kind, detail)
        self.audit.record(
            now,
            by,
            "incident",
            incident.id,
            planned.kind,
            before=before,
            after={**snapshot(incident), **_behalf(detail)},
        )
        self._emit(IncidentEventKind.ASSIGNED, incident, now, {})
        return incident

    def add_note(
        self,
        incident_id: int,
        now: float,
        author: str,
        text: str,
        *,
        kind: str = "note",
        on_behalf_of: str | None = None,
    ) -> bool:
        """Put a note from another stage (or a person) on the timeline; False if the incident is closed
        (final) or unknown."""
        incident = self._by_id.get(incident_id)
        if incident is None or incident.status is IncidentStatus.CLOSED:
            return False
        behalf = _behalf(on_behalf_of)
        self._note(incident, now, kind, {"by": author, "text": text, **behalf})
        self.audit.record(now, author, "incident", incident.id, kind, before=None, after={"text": text, **behalf})
        return True

    def set_external(
        self, incident_id: int, now: float, by: str, ticket: dict[str, str], *, on_behalf_of: str | None = None
    ) -> bool:
        """Record the incident's ticket in another system ({system, key, url}); False if the incident is
        closed (final) or unknown. A new ticket replaces the old one; both stay on the timeline."""
        incident = self._by_id.get(incident_id)
        if incident is None or incident.status is IncidentStatus.CLOSED:
            return False
        before = {**snapshot(incident), "external": incident.external}
        incident.external = dict(ticket)
        behalf = _behalf(on_behalf_of)
        self._note(incident, now, "external_ticket", {"by": by, **ticket, **behalf})
        after = {**snapshot(incident), "external": incident.external, **behalf}
        self.audit.record(now, by, "incident", incident.id, "external_ticket", before=before, after=after)
        self._emit(IncidentEventKind.EXTERNAL, incident, now, {})
        return True

    def link_change(self, incident_id: int, change_id: int, now: float, reason: str) -> bool:
        """Record a change as the suspected cause of an incident."""
        incident = self._by_id.get(incident_id)
        if incident is None:
            return False
        before = snapshot(incident)
        incident.suspected_change = change_id
        self._note(incident, now, "suspected_change", {"change": change_id, "reason": reason})
        self.audit.record(
            now, SYSTEM, "incident", incident.id, "suspected_change", before=before, after=snapshot(incident)
        )
        return True

    def _require(self, incident_id: int) -> Incident:
        incident = self._by_id.get(incident_id)
        if incident is None:
            raise NotFound("not_found", f"no incident {incident_id} that is not closed")
        return incident

    def _acknowledge(self, incident: Incident, now: float, by: str, detail: dict[str, object]) -> None:
        before = snapshot(incident)
        late = sla.breaches_due(incident, now)
        first = incident.acknowledged_at is None
        incident.status = IncidentStatus.ACKNOWLEDGED
        incident.acknowledged_at = now
        for target in late:
            if target == sla.RESPOND:
                self._breach(incident, target, now)
        self._update_sla(incident, now)
        self._note(incident, now, "acknowledged", detail)
        self.audit.record(
            now,
            by,
            "incident",
            incident.id,
            "acknowledged",
            before=before,
            after={**snapshot(incident), **_behalf(detail)},
        )
        if first:
            self.metrics.acknowledged(incident, now - incident.opened_at)
        self._emit(IncidentEventKind.ACKNOWLEDGED, incident, now, {})
        self._due(sla.next_deadline(incident))

    def _resolve(
        self,
        incident: Incident,
        now: float,
        by: str,
        resolved_by: str,
        *,
        detail: dict[str, object],
        labels: dict[str, str],
        end: float | None = None,
        end_source: str | None = None,
    ) -> None:
        """Resolve as of `end` (default now): the SLA clocks stop and breaches are judged at `end`, the
        resolution time and the outage run to it. It is recorded now, and says so when `end` is estimated."""
        ended = now if end is None else min(max(end, incident.opened_at), now)
        before = snapshot(incident)
        for target in sla.breaches_due(incident, ended):
            self._breach(incident, target, now)
        if ended < now:
            self._withdraw_breaches(incident, ended, now)
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = ended
        incident.resolved_by = resolved_by
        self._update_sla(incident, ended)
        record: dict[str, object] = {"by": by if by != SYSTEM else resolved_by, **detail, "ended_at": ended}
        if end_source is not None:
            record.update(end_estimated=True, end_source=end_source)
        self._note(incident, now, "resolved", record)
        self.audit.record(
            now, by, "incident", incident.id, "resolved", before=before, after={**snapshot(incident), **_behalf(detail)}
        )
        self.metrics.resolved(incident, resolved_by, ended - incident.opened_at)
        self._emit(IncidentEventKind.RESOLVED, incident, now, labels, ended_at=ended)
        self._due(ended + self.rules.close_after)

    def _withdraw_breaches(self, incident: Incident, ended: float, now: float) -> None:
        """Breaches the scheduler recorded while the incident still looked open, of targets that fell due
        after it really ended (a lost resolve noticed only at expiry). The breach entries stay on the
        timeline and in the audit trail, as what was believed then; this entry says that the target was met."""
        for target in sorted(incident.sla.breaches):
            due = incident.sla.respond_by if target == sla.RESPOND else incident.sla.resolve_by
            if due is None or due <= ended:
                continue
            before = snapshot(incident)
            incident.sla.breaches.discard(target)
            self._note(
                incident,
                now,
                "sla_breach_withdrawn",
                {"target": target, "due": due, "ended_at": ended, "reason": "the incident ended before the target"},
            )
            self.audit.record(
                now, SYSTEM, "incident", incident.id, "sla_breach_withdrawn", before=before, after=snapshot(incident)
            )
            self.metrics.withdrawn(incident, target)

    def _reopen(
        self, incident: Incident, now: float, by: str, detail: dict[str, object], labels: dict[str, str]
    ) -> None:
        before = snapshot(incident)
        incident.status = IncidentStatus.OPEN
        incident.resolved_at = None
        incident.resolved_by = None
        incident.ended_at = incident.end_source = None
        incident.reopen_count += 1
        self._update_sla(incident, now)
        self._note(incident, now, "reopened", detail)
        self.audit.record(
            now, by, "incident", incident.id, "reopened", before=before, after={**snapshot(incident), **_behalf(detail)}
        )
        self.metrics.reopened(incident)
        self._emit(IncidentEventKind.REOPENED, incident, now, labels)
        self._due(sla.next_deadline(incident))

    def _close(self, incident: Incident, now: float, by: str, detail: dict[str, object]) -> None:
        before = snapshot(incident)
        incident.status = IncidentStatus.CLOSED
        incident.closed_at = now
        self._note(incident, now, "closed", detail)
        self.audit.record(
            now, by, "incident", incident.id, "closed", before=before, after={**snapshot(incident), **_behalf(detail)}
        )
        self._emit(IncidentEventKind.CLOSED, incident, now, {})

    def _breach(self, incident: Incident, target: str, now: float) -> None:
        before = snapshot(incident)
        due = incident.sla.respond_by if target == sla.RESPOND else incident.sla.resolve_by
        incident.sla.breaches.add(target)
        self._note(incident, now, "sla_breached", {"target": target, "due": due, "priority": incident.priority})
        self.audit.record(now, SYSTEM, "incident", incident.id, "sla_breached", before=before, after=snapshot(incident))
        self.metrics.breached(incident, target)
        self._emit(IncidentEventKind.SLA_BREACHED, incident, now, {}, target=target)

    def _at_risk(self, incident: Incident, target: str, now: float) -> None:
        """A point in time, not a change of state: a timeline entry and an event, and no audit event."""
        share = self._share(incident)
        deadline = sla.deadline_of(incident.sla, target)
        incident.sla.at_risk.add(target)
        self._note(
            incident,
            now,
            "sla_at_risk",
            {"target": target, "share": share, "deadline": deadline, "priority": incident.priority},
        )
        self._emit(IncidentEventKind.SLA_AT_RISK, incident, now, {}, target=target, share=share, deadline=deadline)

    # -- time -----------------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """The earliest time run_due has something to do: a deadline or at-risk instant, a flap ending, a close."""
        due = [self.flaps.next_change()]
        for incident in self._by_id.values():
            if incident.status.active:
                due.append(sla.next_deadline(incident))
            elif incident.status is IncidentStatus.RESOLVED and incident.resolved_at is not None:
                due.append(incident.resolved_at + self.rules.close_after)
        return min((d for d in due if d is not None), default=None)

    def run_due(self, now: float) -> None:
        """Everything due by `now`: SLA targets at risk and breached, flapping that stopped, closes after the
        quiet period."""
        stopped = set(self.flaps.settle(now))
        self.problems.prune(now - max(r.recurrence.window for r in self.ruleset.rules))
        for incident in list(self._by_id.values()):
            if stopped & incident.flapping:
                self._flapping_stopped(incident, stopped & incident.flapping, now)
            if incident.status.active:
                late = sla.breaches_due(incident, now)
                for target in sla.at_risk_due(incident, now):
                    if target not in late:  # missed already: the breach says more than "at risk" would
                        self._at_risk(incident, target, now)
                for target in late:
                    self._breach(incident, target, now)
            elif (
                incident.status is IncidentStatus.RESOLVED
                and incident.resolved_at is not None
                and now >= incident.resolved_at + self.rules.close_after
            ):
                self._close(incident, now, SYSTEM, {"by": SYSTEM, "reason": "quiet period over"})

    def _flapping_stopped(self, incident: Incident, fingerprints: set[str], now: float) -> None:
        before = snapshot(incident)
        incident.flapping -= fingerprints
        for fp in sorted(fingerprints):
            self._note(incident, now, "flapping_stopped", {"alert": fp})
        self.audit.record(
            now, SYSTEM, "incident", incident.id, "flapping_stopped", before=before, after=snapshot(incident)
        )
        if incident.status.active and not incident.firing and not incident.flapping:
            self._resolve_by_alerts(incident, now, "alerts", {"after": "flapping stopped"}, {})

    def forget_resolved(self, now: float) -> int:
        """Drop closed incidents from memory (they stay on disk)."""
        gone = [i for i in self._by_id.values() if i.status is IncidentStatus.CLOSED and i.id not in self._dirty]
        for incident in gone:
            del self._by_id[incident.id]
            if self._by_key.get(incident.key) is incident:
                del self._by_key[incident.key]
        return len(gone)

    # -- internals ------------------------------------------------------------------------------------

    def _windows(self, incident: Incident) -> tuple[MaintenanceWindow, ...]:
        return self.ruleset.catalogue.get(incident.service).maintenance

    def _share(self, incident: Incident) -> float | None:
        return self._at_risk_share(incident.priority)

    def _update_sla(self, incident: Incident, now: float) -> None:
        sla.update(
            incident, now, self._windows(incident), self.ruleset.catalogue.pause_statuses, share=self._share(incident)
        )

    def _due(self, at: float | None) -> None:
        if at is not None:
            self.on_due(at)

    def _emit(
        self,
        kind: IncidentEventKind,
        incident: Incident,
        now: float,
        labels: dict[str, str],
        *,
        problem_id: int | None = None,
        runbook: str | None = None,
        ended_at: float | None = None,
        target: str | None = None,
        share: float | None = None,
        deadline: float | None = None,
    ) -> None:
        if self._listeners:
            event = IncidentEvent(
                kind,
                incident.id,
                incident.service,
                incident.priority,
                now,
                dict(labels),
                problem_id,
                runbook,
                ended_at,
                target,
                share,
                deadline,
            )
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    # A listener's bug must not lose the alert change that caused the event.
                    log.exception("incident listener failed on %s of incident %d", kind.value, incident.id)

    def _note(self, incident: Incident, now: float, kind: str, detail: dict[str, object]) -> None:
        self._timeline.append(TimelineEntry(incident.id, now, kind, detail))
        self._mark(incident)

    def _mark(self, incident: Incident) -> None:
        self._dirty[incident.id] = incident
        self._writer.changed()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for incident_id, incident in self._dirty.items():
            batch.upsert(INCIDENT, incident_id, incident_row(incident))
        for key, link in self._links.items():
            batch.upsert(LINK, key, link)
        for entry in self._timeline:
            batch.append(TIMELINE, timeline_row(entry))
        self._dirty.clear()
        self._links.clear()
        self._timeline.clear()


__all__ = ["ACTIONS", "Correlator", "allowed_actions"]
