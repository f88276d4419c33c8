"""Outbox rows round-trip through a backend: full-state upserts, the pending load at start, dead letters, pruning."""

from __future__ import annotations

from daemon.notify.outbox.deliveries import Delivery, State
from daemon.storage.database import Batch
from daemon.storage.outbox import PRUNE, UPSERT, dead_letters, delivery_row, load_pending
from daemon.storage.sql import Backend


def _delivery(event: str, receiver: str, seq: int, state: State = State.PENDING, updated: float = 0.0) -> Delivery:
    return Delivery(event, receiver, seq, "incident.opened", 3, 10.0, '{"a":1}', state, 0, 11.0, "", updated)


def _upsert(backend: Backend, *deliveries: Delivery) -> None:
    batch = Batch()
    for d in deliveries:
        batch.upsert(UPSERT, d.key, delivery_row(d))
    backend.write(batch)


def test_pending_deliveries_load_in_outbox_order_marked_committed(sql_backend: Backend) -> None:
    _upsert(sql_backend, _delivery("e2", "hook", 2), _delivery("e1", "hook", 1), _delivery("e1", "other", 3))
    settled = _delivery("e2", "hook", 2, State.DELIVERED, updated=12.0)
    settled.attempts, settled.last_error = 2, "503 once"
    _upsert(sql_backend, settled)  # the same key: its row is replaced whole
    pending, next_seq = load_pending(sql_backend.primary)
    assert [(d.event_id, d.receiver, d.seq) for d in pending] == [("e1", "hook", 1), ("e1", "other", 3)]
    assert all(d.sendable for d in pending)
    assert next_seq == 4
    assert load_pending(sql_backend.primary)[0][0].body == '{"a":1}'


def test_an_empty_outbox_starts_at_sequence_one(sql_backend: Backend) -> None:
    assert load_pending(sql_backend.primary) == ([], 1)


def test_dead_letters_newest_first_per_receiver_and_pruned_when_old(sql_backend: Backend) -> None:
    _upsert(
        sql_backend,
        _delivery("e1", "hook", 1, State.DEAD, updated=20.0),
        _delivery("e2", "hook", 2, State.DEAD, updated=30.0),
        _delivery("e3", "other", 3, State.DEAD, updated=40.0),
        _delivery("e4", "hook", 4, State.DELIVERED, updated=20.0),
    )
    sql = sql_backend.reader()
    try:
        assert [d["event_id"] for d in dead_letters(sql, None, 10, 0)] == ["e3", "e2", "e1"]
        assert [d["event_id"] for d in dead_letters(sql, "hook", 1, 1)] == ["e1"]
        assert dead_letters(sql, "hook", 1, 0)[0]["dead_at"] == 30.0
    finally:
        sql.close()
    batch = Batch()
    batch.append(PRUNE, (25.0, 25.0))  # delivered before 25, dead before 25
    sql_backend.write(batch)
    assert [d["event_id"] for d in dead_letters(sql_backend.primary, None, 10, 0)] == ["e3", "e2"]
    assert load_pending(sql_backend.primary) == ([], 4)  # the delivered row of seq 4 went too
