"""Runs and their steps as the engine keeps them in memory and journals them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class RunMode(StrEnum):
    LIVE = "live"
    DRY_RUN = "dry_run"
    DRILL = "drill"


class RunStatus(StrEnum):
    PENDING = "pending"
    WAITING_LOCK = "waiting_lock"
    WAITING_APPROVAL = "waiting_approval"
    RUNNING = "running"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    ABORTED = "aborted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    HELD = "held"
    """Interrupted by a restart where neither resuming nor rolling back is safe: a human looks, then cancels."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.ROLLED_BACK,
        RunStatus.ROLLBACK_FAILED,
        RunStatus.ABORTED,
        RunStatus.REJECTED,
        RunStatus.CANCELLED,
        RunStatus.SKIPPED,
        RunStatus.HELD,
    }
)
ACTIVE = frozenset(RunStatus) - TERMINAL

StepPhase = Literal["do", "verify", "rollback"]


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """The daemon stopped (or died) while the step ran; recover() decides what happens next."""
    PLANNED = "planned"
    """A dry run's step: rendered, never executed."""

    @property
    def finished(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.FAILED)


@dataclass
class StepRecord:
    index: int
    """Position in the run's journal: do, verify and rollback steps in the order they ran."""
    name: str
    phase: StepPhase
    status: StepStatus
    attempts: int
    started_at: float
    ended_at: float | None
    summary: str
    output_digest: str
    """sha256 of the full captured output, of which `output` keeps the (redacted) head."""
    output: str
    plan: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    """The action's Outcome.data, for cleanup and rollback after a restart."""
    step_index: int = -1
    """Index of the built step this record belongs to: the runbook's steps, then its run-level verify checks."""
    started: bool = True
    """False only when the action is known not to have begun (refused before it started). A record whose
    outcome is unknown (in flight at a crash) counts as started: its effect may have happened."""

    @property
    def may_have_acted(self) -> bool:
        """Whether this step's rollback is owed: its action started (succeeded, failed after starting, or
        interrupted with its outcome unknown)."""
        if self.phase == "rollback" or self.status is StepStatus.PLANNED:
            return False
        return self.status is not StepStatus.FAILED or self.started


ApprovalDecision = Literal["approved", "rejected", "timed_out"]


@dataclass
class Approval:
    """The run-level approval: asked once, journaled when asked, so its timeout counts across restarts."""

    requested_at: float
    message: str
    """The runbook's approval.message, rendered once when the run was admitted."""
    who: tuple[str, ...]
    timeout: float
    decision: ApprovalDecision | None = None
    by: str | None = None
    """The authenticated principal who decided, or the daemon itself for a timeout."""
    reason: str = ""
    decided_at: float | None = None
    on_behalf_of: str | None = None
    """Whom the decider said it acts for (the request's `by`): recorded, never trusted."""

    @property
    def expires_at(self) -> float:
        return self.requested_at + self.timeout

    def as_json(self) -> dict[str, Any]:
        return {
            "requested_at": self.requested_at,
            "message": self.message,
            "who": list(self.who),
            "timeout": self.timeout,
            "decision": self.decision,
            "by": self.by,
            "reason": self.reason,
            "decided_at": self.decided_at,
            "on_behalf_of": self.on_behalf_of,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Approval:
        return cls(
            requested_at=float(d["requested_at"]),
            message=str(d["message"]),
            who=tuple(d.get("who") or ()),
            timeout=float(d["timeout"]),
            decision=d.get("decision"),
            by=d.get("by"),
            reason=str(d.get("reason") or ""),
            decided_at=d.get("decided_at"),
            on_behalf_of=d.get("on_behalf_of"),
        )


@dataclass
class Run:
    id: int
    runbook: str
    version: str
    """sha256 of the runbook file the run was started from."""
    mode: RunMode
    status: RunStatus
    params: dict[str, str]
    trigger: str
    """incident_opened, repeated, known_error, manual, drill, ..."""
    requested_by: str
    incident_id: int | None
    service: str | None
    emergency: bool
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    reason: str = ""
    """Why the run ended, or why it waits."""
    lock_key: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    breaker_key: str | None = None
    lock_scope: str = "runbook"
    approval: Approval | None = None
    """The run-level approval once asked for (None: the runbook needs none, or it was not asked yet)."""
    """The runbook's `concurrency.scope` when the run started: runbook (its own key) or global (shared)."""

    @property
    def lock(self) -> tuple[str | None, str] | None:
        """The lock the run takes (guards.LockId), or None."""
        if self.lock_key is None:
            return None
        return (None if self.lock_scope == "global" else self.runbook, self.lock_key)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


RunEventKind = Literal["created", "status", "step"]


@dataclass(frozen=True, slots=True)
class RunEvent:
    run: Run
    kind: RunEventKind
