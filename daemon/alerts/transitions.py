"""What the alert table tells the correlation stage."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.model import Alert


@dataclass(frozen=True, slots=True)
class Fired:
    """An alert began a firing episode (new, re-fired with a new startsAt, or revived after expiry)."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class Ended:
    """A firing episode ended: resolved by its sender, superseded by a newer episode, or expired."""

    alert: Alert
    incident_id: int | None
    starts_at: float
    at: float
    expired: bool


Transition = Fired | Ended
