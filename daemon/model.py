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
    """P1..P5. Memory only until the priority matrix (issue 3) stores it."""
    suspected_change: int | None = None
    """A change on the same service shortly before the incident opened. Memory only until issue 3/4."""
    fingerprints: set[str] = field(default_factory=set)
    """Every alert ever attached."""
    firing: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Attached alerts still firing, with their episode's startsAt and when they were attached.
    The incident resolves when this empties."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    incident_id: int
    at: float
    kind: str
    detail: dict[str, object]
