"""Maintenance windows and SLA time around them, on fixed dates (no clock needed)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from daemon.catalogue.windows import MaintenanceWindow, counted, covering, deadline, in_maintenance

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, tz: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


SUNDAY_2AM = MaintenanceWindow(cron="0 2 * * sun", duration=7200.0, timezone="Europe/Berlin")
MOVE = MaintenanceWindow(start=datetime(2026, 12, 5, 22), end=datetime(2026, 12, 6, 6), timezone="Europe/Berlin")


def test_recurring_window_in_its_time_zone() -> None:
    # 2026-11-29 is a Sunday: 02:00-04:00 Berlin is 01:00-03:00 UTC.
    assert SUNDAY_2AM.covering(at("2026-11-29T01:59:59")) is None
    assert SUNDAY_2AM.covering(at("2026-11-29T02:00:00")) == (at("2026-11-29T02:00:00"), at("2026-11-29T04:00:00"))
    assert SUNDAY_2AM.covering(at("2026-11-29T03:59:00")) is not None
    assert SUNDAY_2AM.covering(at("2026-11-29T04:00:00")) is None
    assert SUNDAY_2AM.covering(at("2026-11-30T02:30:00")) is None  # Monday


def test_numeric_weekdays_mean_what_crontab_means() -> None:
    # 0 is Sunday in crontab; APScheduler alone would read it as Monday.
    numeric = MaintenanceWindow(cron="0 2 * * 0", duration=7200.0, timezone="Europe/Berlin")
    assert numeric.covering(at("2026-11-29T02:30:00")) is not None
    assert numeric.covering(at("2026-11-30T02:30:00")) is None


def test_absolute_window_with_local_times() -> None:
    assert MOVE.covering(at("2026-12-05T21:59:00")) is None
    assert MOVE.covering(at("2026-12-05T22:00:00")) is not None
    assert MOVE.covering(at("2026-12-06T05:59:00")) is not None
    assert not in_maintenance([MOVE], at("2026-12-06T06:00:00"))


def test_deadline_skips_maintenance() -> None:
    # A 4 h budget starting Sunday 00:00 runs 2 h, stops 02:00-04:00, runs 2 more: 06:00.
    assert deadline([SUNDAY_2AM], at("2026-11-29T00:00:00"), 4 * 3600) == at("2026-11-29T06:00:00")
    # Starting inside the window: the clock starts when it ends.
    assert deadline([SUNDAY_2AM], at("2026-11-29T03:00:00"), 3600) == at("2026-11-29T05:00:00")
    # No window in the way.
    assert deadline([SUNDAY_2AM], at("2026-11-30T00:00:00"), 3600) == at("2026-11-30T01:00:00")
    assert deadline([], 100.0, 50.0) == 150.0


def test_deadline_across_several_windows() -> None:
    # Four Sundays of 2 h each lie within a four-week budget started on a Saturday.
    start = at("2026-11-28T12:00:00")
    assert deadline([SUNDAY_2AM], start, 28 * 86400) == start + 28 * 86400 + 4 * 7200


def test_counted_excludes_maintenance() -> None:
    assert counted([SUNDAY_2AM], at("2026-11-29T00:00:00"), at("2026-11-29T06:00:00")) == 4 * 3600
    assert counted([SUNDAY_2AM], at("2026-11-29T02:30:00"), at("2026-11-29T03:30:00")) == 0
    assert counted([], 0.0, 10.0) == 10.0


def test_overlapping_windows_are_followed_to_their_end() -> None:
    second = MaintenanceWindow(cron="30 3 * * sun", duration=3600.0, timezone="Europe/Berlin")
    assert covering([SUNDAY_2AM, second], at("2026-11-29T02:10:00")) == at("2026-11-29T04:30:00")


def test_remembered_starts_give_the_same_answers_in_any_query_order() -> None:
    """Starts are cached per window; a fresh window and a used one must agree wherever they are asked."""
    daily = MaintenanceWindow(cron="0 1 * * *", duration=3600.0)
    points = [at("2026-11-29T00:00:00") + k * 1234.5 for k in range(-200, 400)]
    for point in [*points, *reversed(points), points[300], points[0], points[-1] + 90 * 86400]:
        fresh = MaintenanceWindow(cron="0 1 * * *", duration=3600.0)
        assert daily.next_window(point) == fresh.next_window(point), point
        assert daily.covering(point) == MaintenanceWindow(cron="0 1 * * *", duration=3600.0).covering(point), point
        window = daily.next_window(point)
        assert window is not None and window[0] >= point
