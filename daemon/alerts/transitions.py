"""What the alert table tells the correlation stage."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.model import Alert


@dataclass(frozen=True, slots=True)
class Fired:
    """An alert began a firing episode (new, re-fired with a new startsAt, or revived after expiry)."""

    alert: Alert
    revived: bool = False
    """The sender re-sent an episode we had expired: it never ended, our estimate of its end was wrong."""


@dataclass(frozen=True, slots=True)
class Ended:
    """A firing episode ended: resolved by its sender, superseded by a newer episode, or expired."""

    alert: Alert
    incident_id: int | None
    starts_at: float
    at: float
    """When the episode ended: the sender's endsAt, or for an expiry the evidence of its end (estimated)."""
    expired: bool
    end_source: str | None = None
    """Expiry only: where the estimated end came from (prometheus | last_seen)."""
    end_note: str | None = None
    """Expiry only: why Prometheus did not give the end, when it was asked and the end is last_seen."""

    @property
    def estimated(self) -> bool:
        return self.end_source is not None


Transition = Fired | Ended
