from __future__ import annotations

import pytest

from daemon.errors import RequestError
from daemon.report.period import month


def test_month_in_utc_has_its_days() -> None:
    p = month("2026-10")
    assert len(p.days) == 31
    assert p.days[0][0] == "2026-10-01"
    assert p.end - p.start == 31 * 86_400


def test_december_rolls_into_the_next_year_and_dst_days_are_not_24h() -> None:
    assert month("2026-12").days[-1][0] == "2026-12-31"
    berlin = month("2026-10", "Europe/Berlin")
    lengths = {d: e - s for d, s, e in berlin.days}
    assert lengths["2026-10-25"] == 25 * 3600  # clocks go back that night
    assert berlin.end - berlin.start == 31 * 86_400 + 3600


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-10", "2026-10-01", "", "2026-00"])
def test_bad_periods_are_refused_with_the_form_named(bad: str) -> None:
    with pytest.raises(RequestError, match="YYYY-MM"):
        month(bad)


def test_years_outside_the_epoch_range_are_refused() -> None:
    for name in ("0000-01", "1969-12", "9999-12"):
        with pytest.raises(RequestError) as caught:
            month(name)
        assert caught.value.reason == "invalid_period"
