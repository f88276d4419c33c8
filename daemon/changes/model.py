"""The change record as memory holds it, and how a run's terminal status becomes a change outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ChangeType(StrEnum):
    STANDARD = "standard"
    """Pre-approved automation: the runbook needs no approval."""
    NORMAL = "normal"
    """The runbook needs an approval before it changes anything."""
    EMERGENCY = "emergency"
    """Started by hand with emergency=True: expedited, reviewed afterwards."""


class ChangeOutcome(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    ABORTED = "aborted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """The run never changed anything (breaker open, lock or concurrency policy): recorded, not counted as failed."""


OUTCOME_OF_STATUS: dict[str, ChangeOutcome] = {
    "succeeded": ChangeOutcome.SUCCESSFUL,
    "failed": ChangeOutcome.FAILED,
    "rolled_back": ChangeOutcome.ROLLED_BACK,
    "rollback_failed": ChangeOutcome.ROLLBACK_FAILED,
    "aborted": ChangeOutcome.ABORTED,
    "rejected": ChangeOutcome.REJECTED,
    "cancelled": ChangeOutcome.CANCELLED,
    "skipped": ChangeOutcome.SKIPPED,
}
"""Run statuses (values of daemon.runbook.engine.RunStatus) that close a change. `held` is not one: a held run
waits for a human, and its change stays open until that person cancels it."""

NO_SERVICE = "none"
"""The service label of changes made outside any service (a manual run without one), in the metrics and the
report alike. No catalogue service has this label, so such a change is in no service's row of the report."""

CHANGE_MODES = frozenset({"live", "drill"})
"""Run modes that are changes; a dry run changes nothing."""


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    """What the runbook says about the changes it makes."""

    needs_approval: bool
    risk: str
    declared: str = "standard"
    """The runbook's own `change.type`: a runbook may declare itself normal or emergency."""


@dataclass(slots=True, eq=False)
class Change:
    id: int
    run_id: int
    runbook: str
    runbook_version: str
    mode: str
    change_type: ChangeType
    risk: str
    service: str | None
    incident_id: int | None
    requested_by: str
    trigger: str
    created_at: float
    run_status: str
    reason: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    outcome: ChangeOutcome | None = None
    approval: dict[str, Any] | None = None
    """The run-level approval decision as evidence: decision, by, reason, at (epoch seconds)."""
    suspected_incidents: list[int] = field(default_factory=list)
    """Incidents opened on the same service soon after this change, linked to it as their suspected cause."""

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    def last_activity(self) -> float:
        return self.ended_at if self.ended_at is not None else self.started_at or self.created_at


def change_type_of(emergency: bool, policy: ChangePolicy) -> ChangeType:
    if emergency or policy.declared == ChangeType.EMERGENCY:
        return ChangeType.EMERGENCY
    if policy.needs_approval or policy.declared == ChangeType.NORMAL:
        return ChangeType.NORMAL
    return ChangeType.STANDARD
