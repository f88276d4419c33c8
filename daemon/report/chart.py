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
    partial: bool
    """The span covers only part of the day: the bar is that part's availability."""


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
    """(y, label) of the availability axis; the labels are distinct."""
    days: tuple[tuple[float, str, str], ...]
    """(x, day, text-anchor) of the day axis: the period's first, middle and last day."""


def availability_chart(daily: tuple[DayAvailability, ...], objective: float, days: tuple[str, ...]) -> Chart:
    """`days`: every calendar day of the period. Each has its slot, so a bar is a day wide whether or not the
    span covers the whole period; days the span does not cover (after the report's time, before the store's
    first record) have no bar."""
    lowest = min([d.availability_ratio for d in daily] + [objective])
    # Leave room under the lowest point; round the floor to a readable figure.
    floor = max(0.0, 1.0 - max(1.0 - lowest, 1e-4) * 1.25)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def y_of(ratio: float) -> float:
        return PAD_TOP + plot_h * (1.0 - (ratio - floor) / (1.0 - floor))

    slot = plot_w / max(len(days), 1)
    index = {day: i for i, day in enumerate(days)}
    bars = tuple(
        Bar(
            x=round(PAD_LEFT + index[d.day] * slot + slot * 0.1, 2),
            y=round(y_of(d.availability_ratio), 2),
            width=round(slot * 0.8, 2),
            height=round(PAD_TOP + plot_h - y_of(d.availability_ratio), 2),
            day=d.day,
            ratio=d.availability_ratio,
            below_objective=d.availability_ratio < objective,
            partial=d.partial,
        )
        for d in daily
        if d.day in index
    )
    levels = (floor, (floor + 1.0) / 2, 1.0)
    ticks = tuple((round(y_of(r), 2), label) for r, label in zip(levels, _distinct_labels(levels), strict=True))
    # The first and last labels align with the plot's edges (anchored start and end) so neither is cut off.
    labels: tuple[tuple[float, str, str], ...] = ()
    if days:
        mid = len(days) // 2
        labels = (
            (PAD_LEFT, days[0], "start"),
            (round(PAD_LEFT + mid * slot + slot / 2, 2), days[mid], "middle"),
            (WIDTH - PAD_RIGHT, days[-1], "end"),
        )
    return Chart(WIDTH, HEIGHT, bars, round(y_of(objective), 2), floor, ticks, labels)


def _distinct_labels(levels: tuple[float, ...]) -> tuple[str, ...]:
    """Percentages with as many decimals as it takes to tell the levels apart (99.9 % and 99.95 % are not
    both "99.9 %"), trailing zeros dropped."""
    for decimals in range(0, 7):
        labels = tuple(_percent(r, decimals) for r in levels)
        if len(set(labels)) == len(labels):
            return labels
    return tuple(_percent(r, 7) for r in levels)


def _percent(ratio: float, decimals: int) -> str:
    text = f"{ratio * 100:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"
