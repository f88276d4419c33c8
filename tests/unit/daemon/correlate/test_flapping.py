from __future__ import annotations

from daemon.correlate.flapping import FlapTracker
from daemon.correlate.rules import Flapping

T0 = 1_800_000_000.0
SETTINGS = Flapping(window=600.0, enter=4, leave=1)


def test_enters_at_the_threshold_and_not_before() -> None:
    flaps = FlapTracker()
    assert [flaps.record("a", T0 + i, SETTINGS) for i in range(3)] == [False, False, False]
    assert not flaps.is_flapping("a")
    assert flaps.record("a", T0 + 3, SETTINGS)
    assert flaps.is_flapping("a") and len(flaps) == 1
    assert not flaps.record("a", T0 + 4, SETTINGS)  # already flapping: starts only once


def test_changes_spread_wider_than_the_window_never_flap() -> None:
    flaps = FlapTracker()
    for i in range(10):
        assert not flaps.record("a", T0 + i * 300.0, SETTINGS)


def test_hysteresis_leaves_only_below_the_lower_threshold() -> None:
    flaps = FlapTracker()
    for i in range(4):
        flaps.record("a", T0 + i * 10, SETTINGS)  # changes at +0, +10, +20, +30
    # Two changes left in the window (at +20, +30) is still above leave=1: still flapping.
    assert flaps.settle(T0 + 615) == []
    assert flaps.is_flapping("a")
    # It stops once the change at +20 leaves the window: exactly what next_change() predicted.
    assert flaps.next_change() == T0 + 20 + 600
    assert flaps.settle(T0 + 620) == ["a"]
    assert not flaps.is_flapping("a") and len(flaps) == 0
    assert flaps.next_change() is None


def test_a_new_change_while_flapping_postpones_the_end() -> None:
    flaps = FlapTracker()
    for i in range(4):
        flaps.record("a", T0 + i, SETTINGS)
    flaps.record("a", T0 + 500, SETTINGS)
    # Without the change at +500 it would have stopped at +602; now two remain there (+3, +500).
    assert flaps.settle(T0 + 602) == []
    assert flaps.next_change() == T0 + 3 + 600
    assert flaps.settle(T0 + 603) == ["a"]


def test_disabled_never_flaps_and_quiet_alerts_are_forgotten() -> None:
    flaps = FlapTracker()
    off = Flapping(enabled=False)
    assert not any(flaps.record("a", T0 + i, off) for i in range(20))
    flaps.record("b", T0, SETTINGS)
    flaps.settle(T0 + 601)
    assert flaps._changes == {}


def test_only_the_changes_it_needs_are_kept_also_after_a_reload() -> None:
    flaps = FlapTracker()
    for i in range(10):
        flaps.record("a", T0 + i, SETTINGS)
    assert flaps.next_change() == T0 + 8 + 600  # the last enter + 1 changes held: +5..+9
    tighter = Flapping(window=600.0, enter=2, leave=0)
    flaps.record("a", T0 + 10, tighter)
    assert flaps.next_change() == T0 + 10 + 600  # +8..+10 held; stops when +10 leaves the window


def test_rearmed_after_a_restart_it_stops_one_window_later_unless_it_keeps_flapping() -> None:
    flaps = FlapTracker()
    flaps.rearm("a", T0, SETTINGS)
    flaps.rearm("b", T0, SETTINGS)
    assert flaps.is_flapping("a") and len(flaps) == 2
    assert flaps.next_change() == T0 + 600
    # "b" keeps changing after the restart: two changes within the window keep it above leave=1.
    flaps.record("b", T0 + 500, SETTINGS)
    flaps.record("b", T0 + 550, SETTINGS)
    assert flaps.settle(T0 + 599) == []
    assert flaps.settle(T0 + 600) == ["a"]
    assert flaps.is_flapping("b") and flaps.next_change() == T0 + 500 + 600
    assert flaps.settle(T0 + 1100) == ["b"]


def test_rearming_an_alert_flapping_now_changes_nothing() -> None:
    flaps = FlapTracker()
    for i in range(4):
        flaps.record("a", T0 + i, SETTINGS)
    flaps.rearm("a", T0 + 100, SETTINGS)
    assert flaps.next_change() == T0 + 2 + 600


def test_each_alert_says_when_it_stops_and_the_earliest_is_the_next_change() -> None:
    settings = Flapping(window=600, enter=3, leave=1)
    tracker = FlapTracker()
    for t in (0.0, 10.0, 20.0):
        tracker.record("a", t, settings)
    for t in (100.0, 110.0, 120.0):
        tracker.record("b", t, settings)
    # Each stops once its change at index len - 1 - leave (the second to last) has left the window.
    assert (tracker.stops_at("a"), tracker.stops_at("b")) == (10.0 + 600, 110.0 + 600)
    assert tracker.next_change() == 610.0
    assert tracker.stops_at("never-seen") is None
