"""The records itsmd keeps, as the pipeline stages see them in memory.

Each record has one module that owns its state changes (alerts.table for Alert, correlate.incidents for
Incident); everything else reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag, StrEnum


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    """Not refreshed in time: the sender stopped talking about it without a resolve."""


class Source(IntFlag):
    """Paths an alert came in by; a bit set so both paths of one alert fit in one column."""

    ALERTMANAGER = 1
    PROMETHEUS = 2

    @property
    def names(self) -> list[str]:
        return [s.name.lower() for s in Source if s in self and s.name]


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"
    """Final: a closed incident is never reopened; the same alerts open a new one."""

    @property
    def active(self) -> bool:
        """Open or acknowledged: somebody should be working on it."""
        return self in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class ProblemStatus(StrEnum):
    CANDIDATE = "candidate"
    CONFIRMED = "confirmed"
    KNOWN_ERROR = "known_error"
    RESOLVED = "resolved"


@dataclass(slots=True)
class IncomingAlert:
    """One alert from a request, normalised; nothing of it is trusted beyond its validated shape."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    firing: bool
    starts_at: float
    ends_at: float | None
    generator_url: str


@dataclass(slots=True, eq=False)
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: AlertStatus
    starts_at: float
    ends_at: float | None
    generator_url: str
    sources: Source
    first_seen: float
    last_seen: float
    times_seen: int = 1
    state_changes: int = 0
    expires_at: float | None = None
    incident_id: int | None = None
    pending_seq: int = 0
    """Write batch holding this alert's latest durable change (memory only)."""
    touched_at: float | None = None
    """When a re-send first changed last-seen data that is not on disk yet (memory only; None: nothing)."""
    expiry_slot: int | None = None
    """The expiry wheel's bucket that holds this firing alert (memory only; daemon/alerts/expiry.py)."""


@dataclass(slots=True)
class SlaClock:
    """Response and resolution clocks of one incident. SLA time runs while the incident is active and not in
    a pause status, minus maintenance; `counted` holds what ran before `since` (None: stopped)."""

    respond_target: float | None = None
    resolve_target: float | None = None
    counted: float = 0.0
    since: float | None = None
    respond_by: float | None = None
    resolve_by: float | None = None
    breaches: set[str] = field(default_factory=set)
    """Targets breached: respond, resolve. Each is recorded once."""
    respond_risk_by: float | None = None
    resolve_risk_by: float | None = None
    """When the share of a target that counts as "at risk" is used up (derived from the above, not stored)."""
    at_risk: set[str] = field(default_factory=set)
    """Targets whose at-risk moment passed: respond, resolve. Each is recorded once."""


@dataclass(slots=True, eq=False)
class Incident:
    id: int
    key: str
    service: str
    title: str
    status: IncidentStatus
    opened_at: float
    resolved_at: float | None = None
    reopen_count: int = 0
    priority: str = "P3"
    """P1..P5 from the impact x urgency matrix; rises when a more urgent alert joins, never falls by itself."""
    suspected_change: int | None = None
    """A change on the same service shortly before the incident opened."""
    rule: str = "default"
    signature: str = ""
    """Identifies recurrences of "the same" incident (rule-defined labels); problems group by it."""
    acknowledged_at: float | None = None
    closed_at: float | None = None
    resolved_by: str | None = None
    last_attached_at: float = 0.0
    sla: SlaClock = field(default_factory=SlaClock)
    flapping: set[str] = field(default_factory=set)
    """Attached alerts flapping now; while any is, the incident is not resolved by its alerts."""
    problem_id: int | None = None
    workaround: str | None = None
    fingerprints: set[str] = field(default_factory=set)
    """Every alert ever attached."""
    firing: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Attached alerts still firing, with their episode's startsAt and when they were attached.
    The incident resolves when this empties."""
    ended_at: float | None = None
    """When the latest-ending alert of the current episode (since opening or reopening) ended: the end an
    alert-driven resolution records, also after a flapping hold."""
    end_source: str | None = None
    """Where `ended_at` came from when it is estimated (an expiry: prometheus | last_seen); None when a
    sender's resolve said it."""
    assignee: str | None = None
    """The principal working it (a name as the API and console know principals), None: nobody yet."""
    team: str | None = None
    """The team it is with: its service's catalogue `team` when it opened (None if the service has none),
    until someone assigns it to another team."""
    external: dict[str, str] | None = None
    """The ticket another system keeps for the incident: {system, key, url} (PUT .../external)."""


@dataclass(slots=True, eq=False)
class Problem:
    id: int
    signature: str
    service: str
    title: str
    status: ProblemStatus
    opened_at: float
    updated_at: float
    resolved_at: float | None = None
    root_cause: str = ""
    workaround: str = ""
    runbook: str | None = None
    incidents: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    incident_id: int
    at: float
    kind: str
    detail: dict[str, object]
