from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.scheduler.cron import cron_trigger, cron_weekdays


@pytest.mark.parametrize(
    ("standard", "names"),
    [
        ("2", "tue"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7", "sun,fri,sat"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_weekdays_mean_what_they_mean_in_crontab(standard: str, names: str) -> None:
    assert cron_weekdays(standard) == names


def test_a_crontab_weekday_fires_on_that_weekday() -> None:
    after = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
    fire = cron_trigger("0 3 * * 2", "UTC").get_next_fire_time(None, after)
    assert fire is not None and fire.strftime("%A %d") == "Tuesday 24"


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "* * * * 8", "* * * * 5-1", "* * 32 * *"])
def test_bad_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(bad)
