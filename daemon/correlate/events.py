"""What the correlator tells the stages after it (runbook triggers, notifiers, change correlation).

Listeners are called synchronously, inside the request or sweep that caused the event, before its write
batch is cut: whatever a listener records lands in the same commit. So a listener must not block or await;
it records its decision and schedules any slow work as a registered task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    REPEATED = "repeated"
    """The incident recurs: it was linked to a problem whose signature came back."""
    KNOWN_ERROR = "known_error"
    """The incident matches a problem in known_error state; `runbook` names the workaround runbook, if any."""
    RESOLVED = "resolved"
    PRIORITY_RAISED = "priority_raised"
    """A more urgent alert attached: `priority` is the new one (availability counts downtime by priority)."""
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    SLA_BREACHED = "sla_breached"
    """`target` names the SLA target (respond or resolve)."""
    SLA_AT_RISK = "sla_at_risk"
    """`share` of the `target` (respond or resolve) is used; `deadline` is when the whole of it will be, if the
    clock keeps running. Recorded once per incident and target; the incident's state does not change."""
    EXTERNAL = "external"
    """An external ticket was recorded for the incident."""
    ASSIGNED = "assigned"
    """Its assignee or team changed (to nobody too)."""


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    incident_id: int
    service: str
    priority: str
    """P1..P5."""
    at: float
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the alert that caused the event (empty for events not caused by an alert). Untrusted."""
    problem_id: int | None = None
    runbook: str | None = None
    ended_at: float | None = None
    """resolved: when the incident ended (its last alert's end, maybe estimated), at or before `at`, which is
    when the resolution was recorded. Outages and resolution times run to this."""
    target: str | None = None
    share: float | None = None
    deadline: float | None = None


IncidentListener = Callable[[IncidentEvent], None]
