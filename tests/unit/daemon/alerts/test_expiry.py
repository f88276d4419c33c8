"""The expiry wheel finds exactly the firing alerts due by a time, however their expiries moved."""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.alerts.expiry import BUCKET, ExpiryWheel
from daemon.model import Alert, AlertStatus, Source

T0 = 1_800_000_000.0


def alert(fp: str) -> Alert:
    return Alert(
        fingerprint=fp,
        labels={"alertname": fp},
        annotations={},
        status=AlertStatus.FIRING,
        starts_at=T0,
        ends_at=None,
        generator_url="",
        sources=Source.ALERTMANAGER,
        first_seen=T0,
        last_seen=T0,
    )


def test_a_resend_that_moves_the_expiry_later_needs_no_call_and_is_not_due_early() -> None:
    wheel, a = ExpiryWheel(), alert("a")
    a.expires_at = T0 + 10
    firing = {"a": a}
    wheel.add(a)
    a.expires_at = T0 + 100  # what a re-send does: no call
    assert wheel.due(T0 + 50, firing) == []
    assert wheel.due(T0 + 100, firing) == [a]
    assert wheel.due(T0 + 101, firing) == [a]  # due alerts stay until they stop firing
    del firing["a"]
    wheel.forget(a)
    assert wheel.due(T0 + 102, firing) == []
    assert len(wheel) == 0  # the entry left behind was dropped


def test_an_earlier_expiry_is_found_at_its_time_and_the_old_entry_does_not_repeat_it() -> None:
    wheel, a = ExpiryWheel(), alert("a")
    a.expires_at = T0 + 100
    firing = {"a": a}
    wheel.add(a)
    a.expires_at = T0 + 5  # a new episode with a nearer end
    wheel.add(a)
    assert wheel.due(T0 + 5, firing) == [a]
    assert wheel.due(T0 + 200, firing) == [a]  # once, though two entries were made


def test_a_record_that_left_memory_is_not_due_and_not_kept_alive_by_the_wheel() -> None:
    wheel, old, new = ExpiryWheel(), alert("a"), alert("a")
    old.expires_at, new.expires_at = T0 + 1, T0 + 3
    wheel.add(old)
    wheel.forget(old)  # it ended, then left memory; the same fingerprint fired again as a new record
    wheel.add(new)
    assert not [r for r in gc.get_referrers(old) if isinstance(r, list | tuple | dict)]  # only this frame
    assert wheel.due(T0 + 2, {"a": new}) == []
    assert wheel.due(T0 + 3, {"a": new}) == [new]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["fire", "resend", "end", "sweep"]),
        st.integers(0, 5),  # which alert
        st.floats(0, 30, allow_nan=False),  # how far ahead: an expiry, or the sweep's step
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_due_is_exactly_the_firing_alerts_whose_expiry_passed(ops: list[tuple[str, int, float]]) -> None:
    """Against the scan it replaces, under any mix of fires, re-sends, ends and sweeps (times in fractions of
    a bucket too)."""
    wheel = ExpiryWheel()
    alerts = {f"fp{i}": alert(f"fp{i}") for i in range(6)}
    firing: dict[str, Alert] = {}
    now = T0
    for op, i, ahead in ops:
        a = alerts[f"fp{i}"]
        if op == "fire":  # new, new episode or revived: the table sets the expiry anew and tells the wheel
            a.expires_at = now + ahead * BUCKET / 3
            firing[a.fingerprint] = a
            wheel.add(a)
        elif op == "resend" and a.fingerprint in firing:
            assert a.expires_at is not None
            a.expires_at = max(a.expires_at, now + ahead)
        elif op == "end":
            a.expires_at = None
            firing.pop(a.fingerprint, None)
            wheel.forget(a)
        elif op == "sweep":
            now += ahead / 4
            due = wheel.due(now, firing)
            expected = {fp for fp, x in firing.items() if x.expires_at is not None and x.expires_at <= now}
            assert len(due) == len({id(x) for x in due})
            assert {x.fingerprint for x in due} == expected
