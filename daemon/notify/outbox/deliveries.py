"""An outbox delivery: one event for one receiver, its state kept in memory and written as a full row through
the group-commit writer (daemon.storage.outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    """Not delivered within the receiver's max_age: kept for the API, never sent again."""


DELIVERED_RETENTION = 7 * 86400.0
DEAD_RETENTION = 30 * 86400.0
"""How long delivered and dead-lettered rows stay in the store; pending ones stay until they are settled."""


@dataclass(slots=True, eq=False)
class Delivery:
    event_id: str
    receiver: str
    seq: int
    """Outbox order: receivers get an incident's events in this order."""
    kind: str
    incident_id: int | None
    created_at: float
    body: str
    state: State = State.PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    updated_at: float = 0.0
    version: int = 0
    """Bumped on every change; the delivery may be sent only once this version is committed."""
    committed: int = -1

    @property
    def key(self) -> tuple[str, str]:
        return (self.event_id, self.receiver)

    @property
    def sendable(self) -> bool:
        return self.state is State.PENDING and self.committed == self.version
