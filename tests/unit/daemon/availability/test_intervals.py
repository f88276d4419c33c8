from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from daemon.availability.intervals import Interval, clip, intersect, merge, subtract, total


def test_merge_unites_overlapping_and_touching_and_drops_empty() -> None:
    assert merge([(5, 7), (0, 2), (1, 3), (3, 4), (9, 9), (8, 6)]) == [(0, 4), (5, 7)]


def test_clip_cuts_to_the_window() -> None:
    assert clip([(0, 10), (20, 30), (40, 50)], 5, 25) == [(5, 10), (20, 25)]


def test_subtract_and_intersect_split_outages_by_maintenance() -> None:
    outages = [(0.0, 100.0), (200.0, 300.0)]
    maintenance = [(50.0, 60.0), (90.0, 210.0), (290.0, 400.0)]
    assert subtract(outages, maintenance) == [(0.0, 50.0), (60.0, 90.0), (210.0, 290.0)]
    assert intersect(outages, maintenance) == [(50.0, 60.0), (90.0, 100.0), (200.0, 210.0), (290.0, 300.0)]


_intervals = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 60)).map(lambda p: (float(p[0]), float(p[0] + p[1]))),
    max_size=12,
)


def _covered(intervals: list[Interval]) -> set[int]:
    return {t for s, e in intervals for t in range(int(s), int(e))}


@given(_intervals, _intervals)
def test_set_algebra_matches_unit_cells(a: list[Interval], b: list[Interval]) -> None:
    ma, mb = merge(a), merge(b)
    assert _covered(ma) == _covered(a)
    assert all(x[1] < y[0] for x, y in itertools.pairwise(ma))
    assert _covered(subtract(ma, mb)) == _covered(a) - _covered(b)
    assert _covered(intersect(ma, mb)) == _covered(a) & _covered(b)
    assert total(subtract(ma, mb)) + total(intersect(ma, mb)) == total(ma)
