"""The outbox: events become deliveries in the same write batch as the change that caused them.

A listener of the correlator turns an event into one delivery per receiver that wants it; the rows ride in the
batch being built, so they commit with the change or not at all. A delivery may be sent only once the version
of it that will be sent is committed (the commit listener says so): nothing goes out for a change that did not
commit, and a digest's body is never sent with folds that are not yet stored. Attempts, delivery and
dead-lettering are written through the writer too, so a restart resends only what was not recorded as
delivered (at least once; the receiver deduplicates by event id).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from daemon.clock import Clock
from daemon.metrics.counters import CounterStore
from daemon.notify.outbox.config import EventKind, WebhookReceiver
from daemon.notify.outbox.deliveries import DEAD_RETENTION, DELIVERED_RETENTION, Delivery, State
from daemon.notify.outbox.throttle import STORM_WINDOW, StormDetector, TokenBucket
from daemon.storage.database import Batch
from daemon.storage.outbox import PRUNE, UPSERT, delivery_row
from daemon.storage.writer import GroupCommitWriter

NOTIFICATIONS_TOTAL = "itsmd_notifications_total"
CHANNEL = "webhook"
OUTCOMES = ("delivered", "retried", "dead", "folded")
MAX_ERROR = 300


def _labels(kind: str, outcome: str) -> tuple[tuple[str, str], ...]:
    return (("channel", CHANNEL), ("kind", kind), ("outcome", outcome))


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: initial, 2x, 4x ... capped at maximum."""
    return float(min(maximum, initial * 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True, slots=True)
class Event:
    """What happened, as receivers see it. `subject` is what matchers look at."""

    kind: EventKind
    at: float
    service: str
    priority: str | None
    incident_id: int | None
    data: dict[str, Any] = field(default_factory=dict)

    def body(self, event_id: str) -> dict[str, Any]:
        return {
            "id": event_id,
            "kind": self.kind.value,
            "at": self.at,
            "service": self.service,
            "priority": self.priority,
            "incident_id": self.incident_id,
            **self.data,
        }


def wants(receiver: WebhookReceiver, event: Event, team: str) -> bool:
    if receiver.events and event.kind not in receiver.events:
        return False
    if receiver.services and event.service not in receiver.services:
        return False
    if receiver.priorities and event.priority not in receiver.priorities:
        return False
    return not receiver.teams or team in receiver.teams


class Outbox:
    def __init__(
        self,
        writer: GroupCommitWriter,
        counters: CounterStore,
        clock: Clock,
        receivers: Sequence[WebhookReceiver],
        *,
        team_of: Callable[[str], str] = lambda service: "",
    ) -> None:
        self._writer = writer
        self._counters = counters
        self._clock = clock
        self._team_of = team_of
        self.receivers = {r.name: r for r in receivers}
        self.limits = {r.name: TokenBucket(r.rate_limit, r.rate_burst) for r in receivers}
        self._storms = {r.name: StormDetector(r.storm_threshold) for r in receivers}
        self._digests: dict[str, Delivery] = {}
        self._pending: dict[tuple[str, str], Delivery] = {}
        self._dirty: dict[tuple[str, str], Delivery] = {}
        self._cut: dict[tuple[str, str], int] = {}
        self._next_seq = 1
        self._prune_at: float | None = None
        self.wake = asyncio.Event()
        writer.add_collector(self._collect)
        writer.add_commit_listener(self._on_commit)
        if receivers:
            for kind in EventKind:
                for outcome in ("delivered", "dead"):
                    counters.ensure(
                        NOTIFICATIONS_TOTAL, (("channel", CHANNEL), ("kind", kind.value), ("outcome", outcome))
                    )

    def restore(self, pending: Iterable[Delivery], next_seq: int) -> None:
        """Pending deliveries from the store (call before the writer starts). Receivers no longer configured
        keep theirs on disk, untouched, in case the receiver comes back."""
        for d in pending:
            if d.receiver in self.receivers:
                self._pending[d.key] = d
        self._next_seq = max(self._next_seq, next_seq)

    # -- events ---------------------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Record the event for every receiver that wants it, in the batch being built. Synchronous."""
        team = self._team_of(event.service)
        targets = [r for r in self.receivers.values() if wants(r, event, team)]
        if not targets:
            return
        event_id = str(uuid.uuid4())
        body = json.dumps(event.body(event_id), sort_keys=True, separators=(",", ":"))
        for receiver in targets:
            if self._storms[receiver.name].storming(event.at):
                self._fold(receiver, event)
                continue
            d = Delivery(event_id, receiver.name, self._take_seq(), event.kind.value, event.incident_id, event.at, body)
            d.next_attempt = event.at
            d.updated_at = event.at
            self._pending[d.key] = d
            self._mark(d)

    def _fold(self, receiver: WebhookReceiver, event: Event) -> None:
        """Into the receiver's open digest, which goes out when its minute is over."""
        digest = self._digests.get(receiver.name)
        if digest is None or digest.state is not State.PENDING or digest.next_attempt <= event.at:
            digest = Delivery(
                str(uuid.uuid4()), receiver.name, self._take_seq(), EventKind.DIGEST.value, None, event.at, ""
            )
            digest.next_attempt = event.at + STORM_WINDOW
            self._digests[receiver.name] = digest
            self._pending[digest.key] = digest
            content: dict[str, Any] = {
                "id": digest.event_id,
                "kind": EventKind.DIGEST.value,
                "at": event.at,
                "folded": 0,
                "by_kind": {},
                "incidents": [],
                "until": digest.next_attempt,
            }
        else:
            content = json.loads(digest.body)
        content["folded"] += 1
        content["by_kind"][event.kind.value] = content["by_kind"].get(event.kind.value, 0) + 1
        if event.incident_id is not None and event.incident_id not in content["incidents"]:
            content["incidents"].append(event.incident_id)
        digest.body = json.dumps(content, sort_keys=True, separators=(",", ":"))
        digest.updated_at = event.at
        self._counters.inc(
            NOTIFICATIONS_TOTAL, (("channel", CHANNEL), ("kind", event.kind.value), ("outcome", "folded"))
        )
        self._mark(digest)

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    # -- delivery -------------------------------------------------------------------------------------

    def due(self, receiver: str, now: float) -> list[Delivery]:
        """The receiver's deliveries that may be attempted now, in outbox order: committed, due, and the
        earliest pending of their incident (a later event of an incident waits for the earlier ones)."""
        return [d for d in self._heads(receiver) if d.next_attempt <= now]

    def next_due(self, receiver: str) -> float | None:
        """When the receiver's next attempt falls due (None: nothing sendable is pending)."""
        return min((d.next_attempt for d in self._heads(receiver)), default=None)

    def _heads(self, receiver: str) -> list[Delivery]:
        """Sendable deliveries at the head of their incident's line, in outbox order."""
        out: list[Delivery] = []
        blocked: set[int] = set()
        for d in sorted((d for d in self._pending.values() if d.receiver == receiver), key=lambda d: d.seq):
            if d.state is not State.PENDING:
                continue
            if d.incident_id is not None:
                if d.incident_id in blocked:
                    continue
                blocked.add(d.incident_id)
            if d.sendable:
                out.append(d)
        return out

    def delivered(self, d: Delivery, now: float) -> None:
        d.state = State.DELIVERED
        d.attempts += 1
        d.updated_at = now
        d.last_error = ""
        self._count(d, "delivered")
        self._mark(d)

    def failed(self, d: Delivery, now: float, error: str) -> None:
        """A failed attempt: retry after the backoff, or dead-letter it once it is older than max_age."""
        receiver = self.receivers[d.receiver]
        d.attempts += 1
        d.updated_at = now
        d.last_error = error[:MAX_ERROR]
        if now - d.created_at >= receiver.max_age:
            d.state = State.DEAD
            self._count(d, "dead")
        else:
            # The last attempt is made at max_age, however the backoff falls.
            wait = backoff(d.attempts, receiver.retry_initial, receiver.retry_max)
            d.next_attempt = min(now + wait, d.created_at + receiver.max_age)
            self._count(d, "retried")
        self._mark(d)

    def _count(self, d: Delivery, outcome: str) -> None:
        self._counters.inc(NOTIFICATIONS_TOTAL, _labels(d.kind, outcome))

    # -- figures --------------------------------------------------------------------------------------

    def depth(self) -> dict[str, int]:
        out = dict.fromkeys(self.receivers, 0)
        for d in self._pending.values():
            if d.state is State.PENDING and d.receiver in out:
                out[d.receiver] += 1
        return out

    def oldest_pending(self) -> dict[str, float]:
        """Receiver -> created_at of its oldest pending delivery (receivers with none are left out)."""
        out: dict[str, float] = {}
        for d in self._pending.values():
            if d.state is State.PENDING:
                out[d.receiver] = min(out.get(d.receiver, d.created_at), d.created_at)
        return out

    # -- writer ---------------------------------------------------------------------------------------

    def prune(self, now: float) -> None:
        """Drop settled rows past their retention from the store, with the next commit."""
        self._prune_at = now
        self._writer.changed()

    def _mark(self, d: Delivery) -> None:
        d.version += 1
        self._dirty[d.key] = d
        self._writer.changed()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for key, d in self._dirty.items():
            batch.upsert(UPSERT, key, delivery_row(d))
            self._cut[key] = d.version
        self._dirty.clear()
        if self._prune_at is not None:
            batch.append(PRUNE, (self._prune_at - DELIVERED_RETENTION, self._prune_at - DEAD_RETENTION))
            self._prune_at = None

    def _on_commit(self, batch: Batch) -> None:
        rows = batch.upserts.get(UPSERT)
        if not rows:
            return
        for hashable in rows:
            key = cast(tuple[str, str], hashable)
            version = self._cut.pop(key, None)
            d = self._pending.get(key)
            if d is None or version is None:
                continue
            d.committed = version
            if d.state is not State.PENDING and d.committed == d.version:
                del self._pending[d.key]  # final and stored: nothing left to do with it
        self.wake.set()
