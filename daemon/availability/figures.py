"""Availability and error budget over one reporting window, from outage and maintenance intervals.

The definitions an SLA report uses (ITIL/ISO 20000 service availability):
- agreed service time = the window minus the maintenance windows inside it;
- unplanned downtime = outage time outside maintenance windows; planned downtime = outage time inside them;
- availability = (agreed time - unplanned downtime) / agreed time;
- error budget = (1 - objective) x agreed time; remaining ratio = 1 - unplanned downtime / budget. It goes
  below 0 when the budget is overspent, as Sloth's `slo:period_error_budget_remaining:ratio` does, so a
  dashboard shows by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.availability.intervals import Interval, clip, intersect, merge, subtract, total


@dataclass(frozen=True, slots=True)
class WindowFigures:
    start: float
    end: float
    agreed_seconds: float
    unplanned_downtime_seconds: float
    planned_downtime_seconds: float

    @property
    def availability_ratio(self) -> float:
        if self.agreed_seconds <= 0:
            return 1.0
        return max(0.0, 1.0 - self.unplanned_downtime_seconds / self.agreed_seconds)

    def error_budget_remaining_ratio(self, objective: float) -> float:
        budget = (1.0 - objective) * self.agreed_seconds
        if budget <= 0:
            return 1.0 if self.unplanned_downtime_seconds == 0 else 0.0
        return 1.0 - self.unplanned_downtime_seconds / budget


def window_figures(outages: list[Interval], maintenance: list[Interval], start: float, end: float) -> WindowFigures:
    """Outages and maintenance may overlap among themselves; they are merged first."""
    down = merge(clip(outages, start, end))
    planned = merge(clip(maintenance, start, end))
    return WindowFigures(
        start=start,
        end=end,
        agreed_seconds=(end - start) - total(planned),
        unplanned_downtime_seconds=total(subtract(down, planned)),
        planned_downtime_seconds=total(intersect(down, planned)),
    )
