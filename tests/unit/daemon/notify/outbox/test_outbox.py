from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.errors import StoreUnavailable
from daemon.notify.outbox.config import EventKind
from daemon.notify.outbox.deliveries import State
from daemon.notify.outbox.outbox import NOTIFICATIONS_TOTAL, backoff, wants
from daemon.storage.outbox import dead_letters
from tests.unit.daemon.notify.outbox.harness import Harness, event, receiver


def test_backoff_doubles_from_the_initial_wait_up_to_the_maximum() -> None:
    assert [backoff(n, 1.0, 10.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_matchers_select_by_kind_service_priority_and_team(monkeypatch: pytest.MonkeyPatch) -> None:
    at = 1_800_000_000.0
    everything = receiver(monkeypatch)
    picky = receiver(
        monkeypatch,
        events=["incident_resolved"],
        services=["api"],
        priorities=["P1", "P2"],
        teams=["team-api"],
    )
    resolved = event(EventKind.INCIDENT_RESOLVED, at=at)
    assert wants(everything, event(at=at), "")
    assert wants(picky, resolved, "team-api")
    assert not wants(picky, event(at=at), "team-api")  # kind
    assert not wants(picky, event(EventKind.INCIDENT_RESOLVED, at=at, service="db"), "team-api")
    assert not wants(picky, event(EventKind.INCIDENT_RESOLVED, at=at, priority="P3"), "team-api")
    assert not wants(picky, resolved, "team-db")


def test_digest_is_not_a_subscribable_event(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="storm_threshold"):
        receiver(monkeypatch, events=["digest"])


async def test_an_event_is_sent_only_once_its_change_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch)])
    try:
        h.outbox.publish(event(at=h.clock.now()))
        assert h.outbox.due("hook", h.clock.now()) == []  # in the batch being built, not yet committed
        assert h.rows() == []
        await h.writer.flush()
        [d] = h.outbox.due("hook", h.clock.now())
        assert h.rows() == [(d.event_id, "hook", "incident_opened", "pending", 0)]
        body = json.loads(d.body)
        assert body["id"] == d.event_id and body["kind"] == "incident_opened" and body["incident_id"] == 1
    finally:
        h.close()


async def test_events_matching_no_receiver_leave_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, services=["db"])])
    try:
        h.outbox.publish(event(at=h.clock.now()))
        await h.writer.flush()
        assert h.rows() == []
    finally:
        h.close()


async def test_a_failed_attempt_backs_off_then_dead_letters_at_max_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, retry_initial="10s", retry_max="40s", max_age="100s")])
    try:
        start = h.clock.now()
        h.outbox.publish(event(at=start))
        await h.writer.flush()
        [d] = h.outbox.due("hook", start)
        waits = []
        while d.state is State.PENDING:
            h.outbox.failed(d, h.clock.now(), "HTTP 503")
            await h.writer.flush()
            if d.state is State.PENDING:
                waits.append(d.next_attempt - h.clock.now())
                assert h.outbox.due("hook", h.clock.now()) == []
                h.clock.advance(d.next_attempt - h.clock.now())
                assert h.outbox.due("hook", h.clock.now()) == [d]
        # 10, 20, 40, then capped so the last attempt is made at max_age (70 s + 30 s = 100 s).
        assert waits == [10.0, 20.0, 40.0, 30.0]
        assert h.clock.now() - start == 100.0
        assert h.outbox.depth() == {"hook": 0}
        [letter] = dead_letters(h.db.primary, "hook", 10, 0)
        assert letter["event_id"] == d.event_id and letter["attempts"] == 5 and letter["last_error"] == "HTTP 503"
        labels = (("channel", "webhook"), ("kind", "incident_opened"))
        assert h.counters.get(NOTIFICATIONS_TOTAL, (*labels, ("outcome", "dead"))) == 1
        assert h.counters.get(NOTIFICATIONS_TOTAL, (*labels, ("outcome", "retried"))) == 4
    finally:
        h.close()


async def test_an_incidents_events_go_in_order_and_other_incidents_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch)])
    try:
        now = h.clock.now()
        h.outbox.publish(event(EventKind.INCIDENT_OPENED, at=now, incident=1))
        h.outbox.publish(event(EventKind.INCIDENT_OPENED, at=now, incident=2))
        h.outbox.publish(event(EventKind.INCIDENT_RESOLVED, at=now, incident=1))
        await h.writer.flush()
        first = h.outbox.due("hook", now)
        assert [(d.incident_id, d.kind) for d in first] == [(1, "incident_opened"), (2, "incident_opened")]
        # The receiver is down: incident 1's resolve waits behind its failing open, even when due.
        h.outbox.failed(first[0], now, "refused")
        h.outbox.delivered(first[1], now)
        await h.writer.flush()
        # Nothing is due before the open's retry: the waiting resolve does not count as due now.
        assert h.outbox.next_due("hook") == first[0].next_attempt > now
        h.clock.advance(3600)
        assert [(d.incident_id, d.kind) for d in h.outbox.due("hook", h.clock.now())] == [(1, "incident_opened")]
        h.outbox.delivered(first[0], h.clock.now())
        assert [(d.incident_id, d.kind) for d in h.outbox.due("hook", h.clock.now())] == [(1, "incident_resolved")]
    finally:
        h.close()


async def test_pending_deliveries_survive_a_restart_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch)])
    now = h.clock.now()
    h.outbox.publish(event(EventKind.INCIDENT_OPENED, at=now, incident=1))
    h.outbox.publish(event(EventKind.INCIDENT_OPENED, at=now, incident=2))
    await h.writer.flush()
    delivered = h.outbox.due("hook", now)[0]
    h.outbox.delivered(delivered, now)
    await h.writer.flush()
    h.outbox.publish(event(EventKind.INCIDENT_RESOLVED, at=now, incident=2))  # never committed: lost with the "crash"
    h = h.reopen()
    try:
        assert [(d.incident_id, d.kind) for d in h.outbox.due("hook", now)] == [(2, "incident_opened")]
        h.outbox.publish(event(EventKind.INCIDENT_CLOSED, at=now, incident=2))
        await h.writer.flush()
        seqs = [r[0] for r in h.db.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == sorted(set(seqs)) and len(seqs) == 3  # the sequence continues after the restart
    finally:
        h.close()


async def test_a_storm_folds_events_into_one_digest_after_the_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, storm_threshold=2)])
    try:
        start = h.clock.now()
        for n in range(1, 6):
            h.outbox.publish(event(EventKind.INCIDENT_OPENED, at=h.clock.now(), incident=n))
            h.clock.advance(1)
        h.outbox.publish(event(EventKind.SLA_BREACHED, at=h.clock.now(), incident=5))
        await h.writer.flush()
        due = h.outbox.due("hook", h.clock.now())
        assert [d.kind for d in due] == ["incident_opened", "incident_opened"]  # the digest waits for its minute
        h.clock.advance(start + 61 - h.clock.now())
        assert [d.kind for d in h.outbox.due("hook", h.clock.now())] == ["incident_opened", "incident_opened"]
        h.clock.advance(1)  # a minute after the first folded event (the third, at start + 2)
        digest = [d for d in h.outbox.due("hook", h.clock.now()) if d.kind == "digest"]
        assert len(digest) == 1
        body = json.loads(digest[0].body)
        assert body["folded"] == 4
        assert body["by_kind"] == {"incident_opened": 3, "sla_breached": 1}
        assert body["incidents"] == [3, 4, 5]
        assert (
            h.counters.get(
                NOTIFICATIONS_TOTAL, (("channel", "webhook"), ("kind", "incident_opened"), ("outcome", "folded"))
            )
            == 3
        )
        # After the minute the storm is over: the next event goes on its own.
        h.clock.advance(61)
        h.outbox.publish(event(EventKind.INCIDENT_RESOLVED, at=h.clock.now(), incident=9))
        await h.writer.flush()
        assert "incident_resolved" in [d.kind for d in h.outbox.due("hook", h.clock.now())]
    finally:
        h.close()


async def test_a_digest_is_not_sent_with_folds_that_are_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, storm_threshold=1)])
    try:
        now = h.clock.now()
        h.outbox.publish(event(at=now, incident=1))
        h.outbox.publish(event(at=now, incident=2))  # opens the digest
        await h.writer.flush()
        h.clock.advance(59)
        h.outbox.publish(event(at=h.clock.now(), incident=3))  # folded, not committed yet
        h.clock.advance(1)
        assert [d.kind for d in h.outbox.due("hook", h.clock.now())] == ["incident_opened"]
        await h.writer.flush()
        assert sorted(d.kind for d in h.outbox.due("hook", h.clock.now())) == ["digest", "incident_opened"]
    finally:
        h.close()


async def test_settled_rows_leave_the_store_after_their_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, max_age="1s")])
    try:
        now = h.clock.now()
        for n in range(3):
            h.outbox.publish(event(at=now, incident=n))
        await h.writer.flush()
        delivered, dead, pending = h.outbox.due("hook", now)
        h.outbox.delivered(delivered, now)
        h.clock.advance(1)
        h.outbox.failed(dead, h.clock.now(), "HTTP 500")
        await h.writer.flush()
        h.outbox.prune(now + 7 * 86400 + 2)
        await h.writer.flush()
        assert [r[0] for r in h.rows()] == [dead.event_id, pending.event_id]  # a dead letter stays 30 days
        h.outbox.prune(now + 30 * 86400 + 2)
        await h.writer.flush()
        assert [r[0] for r in h.rows()] == [pending.event_id]
    finally:
        h.close()


async def test_nothing_is_sent_while_the_commit_that_holds_the_event_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch)])
    try:
        # A real failing write: the table is gone, so the transaction with the event rolls back.
        h.db.conn.execute("ALTER TABLE outbox RENAME TO outbox_away")
        h.outbox.publish(event(at=h.clock.now()))
        with pytest.raises(StoreUnavailable):
            await h.writer.flush()
        assert h.outbox.due("hook", h.clock.now()) == []
        h.db.conn.execute("ALTER TABLE outbox_away RENAME TO outbox")
        await h.writer.flush()  # the held batch is written with the next commit
        [d] = h.outbox.due("hook", h.clock.now())
        assert h.rows() == [(d.event_id, "hook", "incident_opened", "pending", 0)]
    finally:
        h.close()
