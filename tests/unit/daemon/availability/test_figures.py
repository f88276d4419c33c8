from __future__ import annotations

import pytest

from daemon.availability.figures import window_figures

DAY = 86_400.0


def test_outage_outside_maintenance_costs_availability_and_budget() -> None:
    # 30 days, one 43.2-minute outage: exactly the whole budget of a 99.9 % objective.
    f = window_figures([(1000.0, 1000.0 + 2592.0)], [], 0.0, 30 * DAY)
    assert f.unplanned_downtime_seconds == 2592.0
    assert f.availability_ratio == pytest.approx(0.999)
    assert f.error_budget_remaining_ratio(0.999) == pytest.approx(0.0)
    assert f.error_budget_remaining_ratio(0.99) == pytest.approx(0.9)


def test_maintenance_counts_as_planned_and_shrinks_agreed_time() -> None:
    maintenance = [(DAY, DAY + 3600.0)]
    outages = [(DAY - 600.0, DAY + 600.0), (DAY + 600.0, DAY + 1200.0)]  # overlapping incidents count once
    f = window_figures(outages, maintenance, 0.0, 2 * DAY)
    assert f.agreed_seconds == 2 * DAY - 3600.0
    assert f.unplanned_downtime_seconds == 600.0
    assert f.planned_downtime_seconds == 1200.0
    assert f.availability_ratio == pytest.approx(1 - 600.0 / (2 * DAY - 3600.0))


def test_overspent_budget_goes_negative_and_empty_agreed_time_is_available() -> None:
    f = window_figures([(0.0, 3 * 864.0)], [], 0.0, DAY)  # 3 % down against a 1 % budget
    assert f.error_budget_remaining_ratio(0.99) == pytest.approx(-2.0)
    whole_maintenance = window_figures([(0.0, 10.0)], [(0.0, DAY)], 0.0, DAY)
    assert whole_maintenance.availability_ratio == 1.0
    assert whole_maintenance.error_budget_remaining_ratio(0.999) == 1.0
