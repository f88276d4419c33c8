from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from daemon.alerts.evidence import EndEvidence
from daemon.alerts.table import SEEN_WRITE_DELAY, AlertTable
from daemon.alerts.transitions import Ended, Fired
from daemon.clock import ManualClock
from daemon.config import AlertsConfig
from daemon.model import Alert, AlertStatus, Source
from daemon.storage.alerts import load_active_alerts, load_alert, load_alerts
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, AlertsConfig(webhook_stale_after=600.0, resolve_timeout=300.0, resolved_retention=3600.0))
    yield s
    s.close()


def test_new_firing_alert_is_a_durable_change(stack: Stack) -> None:
    transitions, seq = stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    assert [type(t) for t in transitions] == [Fired]
    assert seq == stack.writer.changed()  # the batch still open
    assert stack.table.firing_count == 1


async def test_unchanged_resend_after_commit_needs_no_write(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    await stack.writer.flush()
    transitions, seq = stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 10)
    assert transitions == []
    assert seq == 0
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.times_seen == 2
    assert alert.last_seen == T0 + 10


def test_resend_before_commit_waits_for_the_same_batch(stack: Stack) -> None:
    _, first = stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    _, second = stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 1)
    assert second == first


def test_resolve_ends_the_episode(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    transitions, _ = stack.table.apply([incoming(firing=False, ends_at=T0 + 30)], Source.ALERTMANAGER, T0 + 31)
    assert len(transitions) == 1
    ended = transitions[0]
    assert isinstance(ended, Ended)
    assert ended.at == T0 + 30
    assert not ended.expired
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.status is AlertStatus.RESOLVED
    assert stack.table.firing_count == 0


def test_late_firing_resend_of_a_resolved_episode_is_ignored(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming(firing=False, ends_at=T0 + 30)], Source.ALERTMANAGER, T0 + 31)
    transitions, _ = stack.table.apply([incoming()], Source.PROMETHEUS, T0 + 32)
    assert transitions == []
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.status is AlertStatus.RESOLVED


def test_new_starts_at_is_a_new_episode(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming(firing=False, ends_at=T0 + 30)], Source.ALERTMANAGER, T0 + 31)
    transitions, _ = stack.table.apply([incoming(starts_at=T0 + 60)], Source.ALERTMANAGER, T0 + 61)
    assert [type(t) for t in transitions] == [Fired]
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.starts_at == T0 + 60
    assert alert.state_changes == 2


def test_missed_resolve_shows_as_end_then_fire(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    transitions, _ = stack.table.apply([incoming(starts_at=T0 + 60)], Source.ALERTMANAGER, T0 + 61)
    assert [type(t) for t in transitions] == [Ended, Fired]


def test_webhook_alert_expires_when_not_refreshed(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    assert stack.table.expire(T0 + 599) == []
    transitions = stack.table.expire(T0 + 600)
    assert len(transitions) == 1
    assert isinstance(transitions[0], Ended) and transitions[0].expired
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.status is AlertStatus.EXPIRED


def test_refresh_postpones_expiry(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 500)
    assert stack.table.expire(T0 + 900) == []
    assert len(stack.table.expire(T0 + 1100)) == 1


def test_prometheus_alert_expires_at_its_ends_at(stack: Stack) -> None:
    stack.table.apply([incoming(ends_at=T0 + 240)], Source.PROMETHEUS, T0)
    assert stack.table.expire(T0 + 239) == []
    assert len(stack.table.expire(T0 + 240)) == 1


def test_refresh_after_expiry_revives_the_same_episode(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.expire(T0 + 600)
    transitions, _ = stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 700)
    assert [type(t) for t in transitions] == [Fired]
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.status is AlertStatus.FIRING


def test_both_sources_are_recorded(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming(ends_at=T0 + 240)], Source.PROMETHEUS, T0 + 1)
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.sources == Source.ALERTMANAGER | Source.PROMETHEUS
    assert alert.sources.names == ["alertmanager", "prometheus"]


async def test_annotation_change_is_durable(stack: Stack) -> None:
    stack.table.apply([incoming(annotations={"v": "1"})], Source.ALERTMANAGER, T0)
    await stack.writer.flush()
    _, seq = stack.table.apply([incoming(annotations={"v": "2"})], Source.ALERTMANAGER, T0 + 1)
    assert seq > stack.writer.committed_seq


async def test_long_resolved_alerts_leave_memory_and_come_back_from_disk(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    asked: list[list[str]] = []

    def load(fps: Sequence[str]) -> dict[str, Alert]:
        asked.append(list(fps))
        return load_alerts(s.db.primary, fps)

    s.table = AlertTable(s.writer, AlertsConfig(resolved_retention=3600.0), load_stored=load)
    try:
        s.table.apply([incoming()], Source.ALERTMANAGER, T0)
        s.table.apply([incoming(firing=False, ends_at=T0 + 1)], Source.ALERTMANAGER, T0 + 1)
        assert s.table.forget_resolved(T0 + 10_000) == 0  # not yet written: must stay
        await s.writer.flush()
        assert s.table.forget_resolved(T0 + 10_000) == 1
        assert s.table.get(incoming().fingerprint) is None
        # A late resolved re-send finds the stored record, not a blank one.
        transitions, _ = s.table.apply([incoming(firing=False, ends_at=T0 + 1)], Source.ALERTMANAGER, T0 + 10_001)
        assert transitions == []
        assert asked[-1] == [incoming().fingerprint]
        alert = s.table.get(incoming().fingerprint)
        assert alert is not None
        assert alert.first_seen == T0
        assert alert.times_seen == 3
    finally:
        s.close()


def test_resolve_of_a_newer_episode_ends_the_one_we_hold(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    transitions, _ = stack.table.apply(
        [incoming(firing=False, starts_at=T0 + 60, ends_at=T0 + 90)], Source.ALERTMANAGER, T0 + 91
    )
    assert len(transitions) == 1
    ended = transitions[0]
    assert isinstance(ended, Ended)
    assert ended.starts_at == T0
    assert ended.at == T0 + 60
    assert stack.table.firing_count == 0
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert (alert.status, alert.starts_at, alert.ends_at) == (AlertStatus.RESOLVED, T0 + 60, T0 + 90)


def test_expiry_ends_an_alert_when_it_was_last_seen_not_when_it_expired(stack: Stack) -> None:
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 120)
    (ended,) = stack.table.expire(T0 + 720)
    assert isinstance(ended, Ended)
    assert ended.at == T0 + 120
    assert (ended.estimated, ended.end_source) == (True, "last_seen")
    alert = stack.table.get(incoming().fingerprint)
    assert alert is not None
    assert alert.ends_at == T0 + 120


def test_expiry_takes_evidence_but_never_before_last_seen_or_after_now(stack: Stack) -> None:
    fp = incoming().fingerprint
    stack.table.apply([incoming()], Source.ALERTMANAGER, T0 + 60)
    (early,) = stack.table.expire(T0 + 660, {fp: EndEvidence(T0 + 10, "prometheus")})
    assert isinstance(early, Ended) and early.at == T0 + 60
    stack.table.apply([incoming(starts_at=T0 + 1000)], Source.ALERTMANAGER, T0 + 1000)
    late = stack.table.expire(T0 + 1600, {fp: EndEvidence(T0 + 9999, "prometheus")})
    assert [type(t) for t in late] == [Ended]
    alert = stack.table.get(fp)
    assert alert is not None and alert.ends_at == T0 + 1600


def test_unknown_fingerprints_of_a_request_are_looked_up_in_one_read(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    asked: list[list[str]] = []

    def load(fps: Sequence[str]) -> dict[str, Alert]:
        asked.append(list(fps))
        return load_alerts(s.db.primary, fps)

    s.table = AlertTable(s.writer, AlertsConfig(), load_stored=load)
    try:
        known = incoming(instance="0")
        s.table.apply([known], Source.PROMETHEUS, T0)
        asked.clear()
        batch = [known, incoming(instance="1"), incoming(instance="2"), incoming(instance="1")]
        transitions, _ = s.table.apply(batch, Source.PROMETHEUS, T0 + 1)
        assert asked == [[batch[1].fingerprint, batch[2].fingerprint, batch[1].fingerprint]]
        assert [t.alert.fingerprint for t in transitions] == [batch[1].fingerprint, batch[2].fingerprint]
        s.table.apply(batch, Source.PROMETHEUS, T0 + 2)
        assert len(asked) == 1  # all held now: no read at all
    finally:
        s.close()


async def test_a_long_resolved_alert_stays_on_disk_after_a_restart_and_comes_back(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    s.table.apply([incoming(instance="old"), incoming(instance="new")], Source.PROMETHEUS, T0)
    s.table.apply([incoming(instance="old", firing=False, ends_at=T0 + 1)], Source.PROMETHEUS, T0 + 1)
    await s.writer.flush()
    s.close()

    r = Stack(tmp_path)
    r.table = AlertTable(
        r.writer, AlertsConfig(resolved_retention=3600.0), load_stored=lambda fps: load_alerts(r.db.primary, fps)
    )
    try:
        active = load_active_alerts(r.db.primary, now=T0 + 10_000, retention=3600.0)
        assert [a.fingerprint for a in active] == [incoming(instance="new").fingerprint]
        r.table.restore(active, T0 + 10_000)
        assert r.table.get(incoming(instance="old").fingerprint) is None
        again = incoming(instance="old", starts_at=T0 + 9_000)
        transitions, _ = r.table.apply([again], Source.PROMETHEUS, T0 + 10_001)
        alert = r.table.get(incoming(instance="old").fingerprint)
        assert alert is not None
        assert alert.first_seen == T0  # the stored record, firing a new episode
        assert [type(t) for t in transitions] == [Fired]
    finally:
        r.close()


def test_fingerprint_of_finds_only_alerts_held_with_exactly_those_labels(stack: Stack) -> None:
    alert = incoming(alertname="A", instance="1")
    assert stack.table.fingerprint_of(alert.labels) is None
    stack.table.apply([alert], Source.PROMETHEUS, T0)
    assert stack.table.fingerprint_of(dict(reversed(alert.labels.items()))) == alert.fingerprint
    assert stack.table.fingerprint_of({**alert.labels, "extra": "x"}) is None
    assert stack.table.fingerprint_of({k: v for k, v in alert.labels.items() if k != "instance"}) is None


async def test_a_forgotten_alert_leaves_the_label_index(stack: Stack) -> None:
    alert = incoming(alertname="A")
    stack.table.apply([alert], Source.PROMETHEUS, T0)
    stack.table.apply([incoming(alertname="A", firing=False, ends_at=T0 + 1)], Source.PROMETHEUS, T0 + 1)
    await stack.writer.flush()
    assert stack.table.forget_resolved(T0 + 10_000) == 1
    assert stack.table.fingerprint_of(alert.labels) is None


async def test_nothing_in_memory_keeps_a_forgotten_alert(stack: Stack) -> None:
    """Memory is bounded by what is active: a fingerprint resolved long ago is found on disk, not in a list."""
    alert = incoming(alertname="A")
    stack.table.apply([alert], Source.PROMETHEUS, T0)
    stack.table.apply([incoming(alertname="A", firing=False, ends_at=T0 + 1)], Source.PROMETHEUS, T0 + 1)
    await stack.writer.flush()
    assert stack.table.forget_resolved(T0 + 10_000) == 1
    for name, held in vars(stack.table).items():
        if isinstance(held, set | dict):
            assert alert.fingerprint not in held, name
            assert all(getattr(a, "fingerprint", None) != alert.fingerprint for a in held), name


async def test_a_resend_reaches_disk_after_the_write_delay_and_at_shutdown(tmp_path: Path) -> None:
    """One row update per alert per SEEN_WRITE_DELAY, however often it is re-sent; none is lost at shutdown."""
    db = Database(tmp_path / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db, flush_interval=0.0)  # every commit takes the lazy rows that are due
    clock = ManualClock(T0)
    table = AlertTable(writer, AlertsConfig(), load_stored=lambda fps: {}, clock=clock)
    a, b = incoming(instance="a"), incoming(instance="b")
    try:
        table.apply([a, b], Source.PROMETHEUS, T0)
        await writer.flush()
        clock.advance(10)
        table.apply([a], Source.PROMETHEUS, clock.now())
        clock.advance(10)
        table.apply([a, b], Source.PROMETHEUS, clock.now())
        await writer.flush()
        stored = load_alert(db.primary, a.fingerprint)
        assert stored is not None and stored.times_seen == 1
        clock.advance(SEEN_WRITE_DELAY - 10)  # a's first unwritten re-send is due, b's is not
        await writer.flush()
        stored_a, stored_b = load_alert(db.primary, a.fingerprint), load_alert(db.primary, b.fingerprint)
        assert stored_a is not None and stored_b is not None
        assert (stored_a.times_seen, stored_a.last_seen) == (3, T0 + 20)
        assert stored_b.times_seen == 1
        writer.close()
        await writer.run()  # shutdown writes what is left, due or not
        stored_b = load_alert(db.primary, b.fingerprint)
        assert stored_b is not None
        assert (stored_b.times_seen, stored_b.last_seen) == (2, T0 + 20)
    finally:
        writer.shutdown_thread()
        db.close()


async def test_an_alert_found_by_its_labels_then_forgotten_is_read_back_not_updated_in_limbo(tmp_path: Path) -> None:
    """fingerprint_of hands what it found to the next apply; forgetting in between must not leave apply a
    record that is no longer in memory."""
    s = Stack(tmp_path)
    s.table = AlertTable(
        s.writer, AlertsConfig(resolved_retention=3600.0), load_stored=lambda fps: load_alerts(s.db.primary, fps)
    )
    try:
        a = incoming(alertname="A")
        s.table.apply([a], Source.PROMETHEUS, T0)
        s.table.apply([incoming(alertname="A", firing=False, ends_at=T0 + 1)], Source.PROMETHEUS, T0 + 1)
        await s.writer.flush()
        before = s.table.get(a.fingerprint)
        assert s.table.fingerprint_of(a.labels) == a.fingerprint  # a request is parsed ...
        assert s.table.forget_resolved(T0 + 10_000) == 1  # ... the sweep runs before it is applied
        s.table.apply([incoming(alertname="A", starts_at=T0 + 10_000)], Source.PROMETHEUS, T0 + 10_000)
        now_held = s.table.get(a.fingerprint)
        assert now_held is not None and now_held is not before
        assert now_held.status is AlertStatus.FIRING and now_held.first_seen == T0  # the stored record, fired anew
        assert s.table.firing() == [now_held]
    finally:
        s.close()


def test_expiry_finds_alerts_of_new_episodes_and_revivals_and_not_ended_ones(stack: Stack) -> None:
    a, b = incoming(instance="a"), incoming(instance="b")
    stack.table.apply([a, b], Source.ALERTMANAGER, T0)
    stack.table.apply([incoming(instance="b", firing=False, ends_at=T0 + 5)], Source.ALERTMANAGER, T0 + 5)
    # A new episode of b, sooner to expire than a (stale after 600 s on this stack).
    stack.table.apply([incoming(instance="b", starts_at=T0 + 300)], Source.ALERTMANAGER, T0 + 300)
    assert [x.fingerprint for x in stack.table.due(T0 + 600)] == [a.fingerprint]
    [ended] = stack.table.expire(T0 + 600)
    assert ended.alert.fingerprint == a.fingerprint
    assert stack.table.due(T0 + 899) == []
    assert [x.fingerprint for x in stack.table.due(T0 + 900)] == [b.fingerprint]
    stack.table.apply([incoming(instance="a")], Source.ALERTMANAGER, T0 + 901)  # a revived: the sender re-sent it
    assert stack.table.due(T0 + 1500) == [stack.table.get(b.fingerprint)]
    assert {x.fingerprint for x in stack.table.due(T0 + 1501)} == {a.fingerprint, b.fingerprint}
