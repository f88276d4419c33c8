"""The availability chart of the HTML report: inline SVG geometry computed here, drawn by the template.

Only numbers leave this module; labels are escaped by the template, so a service name cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.report.model import DayAvailability

WIDTH = 640
HEIGHT = 200
PAD_LEFT = 56
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 28


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    ratio: float
    below_objective: bool


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    objective_y: float
    floor: float
    """The availability at the bottom of the plot: the axis starts there, not at 0, so 99.9 % and
    99.99 % look different."""
    ticks: tuple[tuple[float, str], ...]


def availability_chart(daily: tuple[DayAvailability, ...], objective: float) -> Chart:
    lowest = min([d.availability_ratio for d in daily] + [objective])
    # Leave room under the lowest point; round the floor to a readable figure.
    floor = max(0.0, 1.0 - max(1.0 - lowest, 1e-4) * 1.25)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def y_of(ratio: float) -> float:
        return PAD_TOP + plot_h * (1.0 - (ratio - floor) / (1.0 - floor))

    slot = plot_w / max(len(daily), 1)
    bars = tuple(
        Bar(
            x=round(PAD_LEFT + i * slot + slot * 0.1, 2),
            y=round(y_of(d.availability_ratio), 2),
            width=round(slot * 0.8, 2),
            height=round(PAD_TOP + plot_h - y_of(d.availability_ratio), 2),
            day=d.day,
            ratio=d.availability_ratio,
            below_objective=d.availability_ratio < objective,
        )
        for i, d in enumerate(daily)
    )
    ticks = tuple((round(y_of(r), 2), f"{r * 100:.3g} %") for r in (floor, (floor + 1.0) / 2, 1.0))
    return Chart(WIDTH, HEIGHT, bars, round(y_of(objective), 2), floor, ticks)
