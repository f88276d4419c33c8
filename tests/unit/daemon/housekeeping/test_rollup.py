"""The daily rollup plus the episodes after its mark give the figures the whole history gives.

Histories of incidents across many days (outages overlapping each other, days and a weekly maintenance
window); one tracker restored from all of them, another from the rollup rows and the same histories cut at
the mark: every downtime counter and window figure agrees.
"""

from __future__ import annotations

import random

import pytest

from daemon.availability.episodes import History, Mark
from daemon.availability.tracker import AvailabilityTracker
from daemon.catalogue.services import Catalogue, Service
from daemon.catalogue.windows import MaintenanceWindow
from daemon.clock import ManualClock
from daemon.housekeeping.rollup import DAY, day_floor, day_rows, next_mark, open_since

START = day_floor(1_900_000_000.0)
NOW = START + 60 * DAY + 5000
WINDOWS = (DAY, 7 * DAY, 30 * DAY)


def _catalogue() -> Catalogue:
    weekly = MaintenanceWindow(name="w", cron="0 2 * * 0", duration="3h")
    return Catalogue(services=(Service(name="api", maintenance=(weekly,)), Service(name="db")))


def _histories(seed: int) -> list[History]:
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    out = []
    for i in range(300):
        opened = START + rng.uniform(0, 59 * DAY)
        h = History(i + 1, rng.choice(["api", "db"]))
        h.marks.append(Mark(opened, "opened", rng.choice(["P1", "P2", "P3"])))
        at = opened
        for _ in range(rng.randint(0, 2)):
            at += rng.uniform(60, 3 * DAY)  # some cross midnight, some overlap others
            h.marks.append(Mark(at, "resolved"))
            at += rng.uniform(60, 1800)
            h.marks.append(Mark(at, "reopened"))
        if rng.random() < 0.3:
            h.marks.append(Mark(at + 30, "priority_raised", "P1"))
        end = at + rng.uniform(60, DAY)
        if end < NOW - DAY:
            h.marks.append(Mark(end, "resolved"))
        out.append(h)
    return out


def _tracker() -> AvailabilityTracker:
    catalogue = _catalogue()
    return AvailabilityTracker(lambda: catalogue, ManualClock(NOW), WINDOWS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_and_tail_equal_the_whole_history(seed: int) -> None:
    histories = _histories(seed)
    whole = _tracker()
    whole.restore(histories, NOW)

    mark = next_mark(NOW, max(WINDOWS), histories)
    assert mark % DAY == 0
    opened = open_since(histories)
    assert mark <= NOW - max(WINDOWS) and (opened is None or mark <= opened)
    rows = day_rows(histories, _catalogue(), START, mark)
    assert rows and all(START <= r[1] < mark for r in rows)
    folded: dict[str, tuple[float, float]] = {}
    for service, _, unplanned, planned in rows:
        u, p = folded.get(service, (0.0, 0.0))
        folded[service] = (u + unplanned, p + planned)
    assert any(p > 0 for _, p in folded.values())  # the maintenance window was crossed
    rolled = _tracker()
    rolled.restore(_histories(seed), NOW, folded=folded, since=mark)

    for service in ("api", "db"):
        assert rolled.ledger.downtime(service, NOW) == pytest.approx(whole.ledger.downtime(service, NOW), abs=1e-6)
        for length in WINDOWS:
            a, b = rolled.ledger.window(service, NOW, length), whole.ledger.window(service, NOW, length)
            assert a.unplanned_downtime_seconds == pytest.approx(b.unplanned_downtime_seconds, abs=1e-6)
            assert a.planned_downtime_seconds == pytest.approx(b.planned_downtime_seconds, abs=1e-6)
