"""What a service report says, per service, for one period. Built from stored history by the report
builder; rendered as JSON, Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass, field

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


@dataclass(frozen=True, slots=True)
class DayAvailability:
    day: str
    availability_ratio: float


@dataclass(frozen=True, slots=True)
class DrillResult:
    name: str
    at: float
    outcome: str
    recovery_seconds: float | None
    rto_seconds: float

    @property
    def met_rto(self) -> bool:
        return self.recovery_seconds is not None and self.recovery_seconds <= self.rto_seconds


@dataclass(frozen=True, slots=True)
class SlaFigures:
    target: str
    """respond or resolve."""
    met: int
    breached: int

    @property
    def attainment_ratio(self) -> float | None:
        counted = self.met + self.breached
        return self.met / counted if counted else None


@dataclass(frozen=True, slots=True)
class ServiceReport:
    service: str
    owner: str
    objective_ratio: float
    availability_ratio: float
    unplanned_downtime_seconds: float
    planned_downtime_seconds: float
    error_budget_remaining_ratio: float
    daily: tuple[DayAvailability, ...]
    incidents_by_priority: dict[str, int]
    mtta_seconds: float | None
    mttr_seconds: float | None
    sla: tuple[SlaFigures, ...]
    problems_opened: int
    known_errors: int
    changes_by_outcome: dict[str, int]
    changes_causing_incidents: int
    drills: tuple[DrillResult, ...] = field(default_factory=tuple)
    estimated_ends: int = 0
    """Resolved incidents (of those in MTTR) whose end is estimated: an expiry after a lost resolve."""

    @property
    def met_objective(self) -> bool:
        return self.availability_ratio >= self.objective_ratio


@dataclass(frozen=True, slots=True)
class Report:
    period: str
    start: float
    end: float
    generated_at: float
    time_zone: str
    services: tuple[ServiceReport, ...]
