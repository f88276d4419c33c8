from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.availability.intervals import Interval
from daemon.availability.ledger import Episode, Ledger, recompute

DAY = 86_400.0
T0 = 1_800_000_000.0


def nightly(service: str, start: float, end: float) -> list[Interval]:
    """A maintenance hour every day at 02:00 (epoch-aligned days), for every service."""
    first = int((start - 7200.0) // DAY)
    out = [(d * DAY + 7200.0, d * DAY + 10800.0) for d in range(first, int(end // DAY) + 1)]
    return [(max(s, start), min(e, end)) for s, e in out if e > start and s < end]


def test_an_open_outage_keeps_counting_until_it_resolves() -> None:
    ledger = Ledger(lambda s, a, b: [], keep=30 * DAY)
    ledger.started("api", 1, T0)
    assert ledger.downtime("api", T0 + 60) == (60.0, 0.0)
    assert ledger.downtime("api", T0 + 600) == (600.0, 0.0)
    ledger.started("api", 2, T0 + 100)  # a second incident at the same time does not count twice
    ledger.ended("api", 1, T0 + 700)
    ledger.ended("api", 2, T0 + 800)
    assert ledger.downtime("api", T0 + 5000) == (800.0, 0.0)
    figures = ledger.window("api", T0 + DAY - 1000, DAY)
    assert figures.availability_ratio == pytest.approx(1 - 800 / DAY)
    assert ledger.downtime("web", T0) == (0.0, 0.0)


def test_maintenance_time_is_planned_downtime() -> None:
    day0 = (T0 // DAY) * DAY
    ledger = Ledger(nightly, keep=30 * DAY)
    ledger.started("db", 7, day0 + 6000.0)  # 01:40, runs into the 02:00-03:00 window
    ledger.ended("db", 7, day0 + 9000.0)
    assert ledger.downtime("db", day0 + DAY) == (1200.0, 1800.0)


episodes = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 3 * 24), st.integers(1, 30), st.booleans()).map(
        lambda t: Episode(
            "api", t[0], T0 + t[1] * 3600.0, None if t[3] and t[0] % 5 == 0 else T0 + (t[1] + t[2]) * 3600.0
        )
    ),
    max_size=25,
    unique_by=lambda e: e.incident_id,
)


@settings(max_examples=60)
@given(episodes, st.integers(1, 10))
def test_folded_ledger_equals_a_recompute_from_the_episodes(history: list[Episode], days: int) -> None:
    now = T0 + days * DAY
    seen = [e for e in history if e.start < now]
    # What the store holds at `now`: episodes that end later are still open then.
    stored = [Episode(e.service, e.incident_id, e.start, None if (e.end or now + 1) > now else e.end) for e in seen]
    restarted = Ledger(nightly, keep=DAY)
    restarted.restore(stored, now)
    live = Ledger(nightly, keep=DAY)
    for e in sorted(seen, key=lambda e: e.start):
        live.started(e.service, e.incident_id, e.start)
    for e in sorted((e for e in seen if e.end is not None and e.end <= now), key=lambda e: e.end or 0.0):
        live.ended(e.service, e.incident_id, e.end or 0.0)
        live.compact(e.end or 0.0)
    expected = recompute(stored, nightly, "api", now)
    assert restarted.downtime("api", now) == pytest.approx(expected)
    assert live.downtime("api", now) == pytest.approx(expected)
