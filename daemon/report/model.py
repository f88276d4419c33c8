"""What a service report says, per service, for one period. Built from stored history by the report
builder; rendered as JSON, Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass, field

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
MEASURED_OUTCOMES = frozenset({"passed", "failed"})
"""Drill outcomes that say something about the RTO (a failed run never recovered: it did not meet it)."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """The span the figures cover, inside the period: see daemon/report/coverage.py."""

    start: float | None
    """None: no data (the period is in the future, or entirely before the store's first record)."""
    end: float | None
    to_date: bool
    """The period has not ended: the figures stop at the report's time, not at the period's end."""
    first_record_at: float | None
    """The store's first record (None: the store holds none)."""
    from_first_record: bool
    """The first record is inside the period: the span starts there, not at the period's start."""

    @property
    def no_data(self) -> bool:
        return self.start is None


@dataclass(frozen=True, slots=True)
class DayAvailability:
    day: str
    availability_ratio: float
    partial: bool = False
    """The span covers only part of this day (today, or the day of the store's first record)."""


@dataclass(frozen=True, slots=True)
class DrillResult:
    name: str
    at: float
    outcome: str
    recovery_seconds: float | None
    rto_seconds: float

    @property
    def met_rto(self) -> bool | None:
        """None when the drill measured nothing to hold against the RTO: skipped, error or interrupted."""
        if self.outcome not in MEASURED_OUTCOMES:
            return None
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
    availability_ratio: float | None
    """Over the span covered (Report.coverage); None when there is no data."""
    unplanned_downtime_seconds: float | None
    planned_downtime_seconds: float | None
    error_budget_remaining_ratio: float | None
    """1 - unplanned downtime / the error budget of the span covered (not of the whole period)."""
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
    error_budget_seconds: float | None = None
    """The error budget of the span covered: (1 - objective) x its agreed service time."""

    @property
    def met_objective(self) -> bool | None:
        """None when there is no data: no verdict."""
        if self.availability_ratio is None:
            return None
        return self.availability_ratio >= self.objective_ratio


@dataclass(frozen=True, slots=True)
class Report:
    period: str
    start: float
    end: float
    generated_at: float
    time_zone: str
    services: tuple[ServiceReport, ...]
    coverage: Coverage
    serviceless_changes: dict[str, int] = field(default_factory=dict)
    """Changes made outside any service (service "none", as in itsmd_changes_total), by outcome: they belong to
    no service's section, and are listed here so that no change is left out of the report."""
