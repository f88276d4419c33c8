"""The `retention:` section: how long each kind of record is kept, and how housekeeping paces itself.

Defaults are chosen for ISO/IEC 20000-1 evidence: the records an audit asks for (incidents with their
timelines, problems, changes, runbook runs, drills) are kept three years; raw alerts, which are evidence only
through the incidents they opened, 30 days. The audit trail is not here: housekeeping never prunes it
(`itsmd audit archive` is the one way it shrinks).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.durations import PositiveDuration
from daemon.yamlsource import Finding, raise_problems

DAY = 86400.0
YEAR = 365 * DAY
EVIDENCE = 3 * YEAR
"""ISO/IEC 20000 evidence: kept at least this long by default."""


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """false: nothing is pruned (rollups are still kept, so turning it on later loses no figure)."""
    alerts: PositiveDuration = 30 * DAY
    """Resolved and expired alerts, from their end; kept longer while an incident still needs them (open,
    inside its reopen window, or not yet rolled up into availability)."""
    incidents: PositiveDuration = EVIDENCE
    """Closed incidents with their timelines and alert links, from their resolution."""
    problems: PositiveDuration = EVIDENCE
    """Resolved problems, from their last update."""
    changes: PositiveDuration = EVIDENCE
    """Changes with an outcome, with their events, from their end."""
    runs: PositiveDuration = EVIDENCE
    """Finished runbook runs with their steps, from their end."""
    drills: PositiveDuration = EVIDENCE
    """Finished drill runs, from their end."""
    outbox: PositiveDuration = 30 * DAY
    """Delivered and dead webhook deliveries, from their last attempt."""
    interval: PositiveDuration = 3600.0
    """How often housekeeping runs (rollups first, then pruning, then giving space back)."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    """Rows deleted per commit: small, so a prune never holds the writer long enough to stall ingest."""
    pause: PositiveDuration = 0.05
    """Time between two delete batches, in which ingest commits."""
    max_batches: int = Field(default=200, ge=1)
    """Batches per kind per run: a backlog (the first run on years of history) is worked off over runs."""

    @model_validator(mode="after")
    def _whole_days(self) -> RetentionConfig:
        found = [
            Finding((name,), "retention periods are whole days, at least 1d")
            for name in ("alerts", "incidents", "problems", "changes", "runs", "drills", "outbox")
            if getattr(self, name) < DAY or getattr(self, name) % DAY
        ]
        raise_problems(found)
        return self

    def period(self, record: str) -> float:
        return float(getattr(self, record))
