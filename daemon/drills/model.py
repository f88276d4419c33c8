"""A drill run as the runner keeps it in memory and stores it (table drill_runs)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DrillOutcome(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    """The runbook succeeded, recovery was observed within the RTO (and data loss within the RPO, if measured)."""
    FAILED = "failed"
    """The runbook did not succeed, or recovery was slower than the RTO or never observed."""
    INTERRUPTED = "interrupted"
    """The daemon stopped while the drill ran (recorded at shutdown, or at the next start after a crash): the
    drill proved nothing either way, so it is neither passed nor failed."""
    SKIPPED = "skipped"
    """Not started: the service had an open P1/P2 incident, or another drill of the service was running."""
    ERROR = "error"
    """Could not be started or measured (unknown runbook, a param refused, Prometheus not answering)."""

    @property
    def ended(self) -> bool:
        return self is not DrillOutcome.RUNNING


ENDED_OUTCOMES = tuple(o.value for o in DrillOutcome if o.ended)


@dataclass
class DrillRun:
    id: int
    drill: str
    service: str
    trigger: str
    """schedule or manual."""
    requested_by: str
    outcome: DrillOutcome
    reason: str
    started_at: float
    rto_seconds: float
    rpo_seconds: float | None = None
    run_id: int | None = None
    """The runbook run (mode drill) behind this drill run, once started."""
    ended_at: float | None = None
    recovery_seconds: float | None = None
    """From the runbook run's start (after any approval) until recovery was observed."""
    data_loss_seconds: float | None = None
    """What rpo_query answered at recovery."""
