from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from daemon.report.chart import PAD_LEFT, PAD_RIGHT, WIDTH, availability_chart
from daemon.report.model import Coverage, DayAvailability, DrillResult, Report, ServiceReport, SlaFigures
from daemon.report.period import month
from daemon.report.render import render

HOSTILE = '<script>alert("x")</script>'


def _report() -> Report:
    period = month("2026-10")
    daily = tuple(DayAvailability(day, 1.0 if i != 3 else 0.97) for i, (day, _, _) in enumerate(period.days))
    api = ServiceReport(
        service="api",
        owner="team-web",
        objective_ratio=0.999,
        availability_ratio=0.99903,
        unplanned_downtime_seconds=2592.0,
        planned_downtime_seconds=3600.0,
        error_budget_remaining_ratio=0.03,
        error_budget_seconds=2674.8,
        daily=daily,
        incidents_by_priority={"P1": 1, "P3": 4},
        mtta_seconds=420.0,
        mttr_seconds=5400.0,
        sla=(SlaFigures("respond", 4, 1), SlaFigures("resolve", 5, 0)),
        problems_opened=1,
        known_errors=1,
        changes_by_outcome={"successful": 3, "rolled_back": 1},
        changes_causing_incidents=1,
        drills=(DrillResult("db-failover", period.start + 86_400, "passed", 95.0, 300.0),),
    )
    hostile = ServiceReport(
        service=HOSTILE,
        owner=HOSTILE,
        objective_ratio=0.99,
        availability_ratio=0.9,
        unplanned_downtime_seconds=10.0,
        planned_downtime_seconds=0.0,
        error_budget_remaining_ratio=-9.0,
        daily=daily,
        incidents_by_priority={},
        mtta_seconds=None,
        mttr_seconds=None,
        sla=(),
        problems_opened=0,
        known_errors=0,
        changes_by_outcome={},
        changes_causing_incidents=0,
    )
    whole = Coverage(period.start, period.end, False, period.start - 86_400 * 60, False)
    return Report("2026-10", period.start, period.end, period.end + 60, "UTC", (api, hostile), whole)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_html_is_a_page_with_an_svg_chart_per_service_and_escapes_names() -> None:
    html = render(_report(), "html")
    parser = _Collect()
    parser.feed(html)
    assert parser.tags.count("svg") == 2
    assert "script" not in parser.tags
    assert "&lt;script&gt;" in html
    assert "99.903 %" in html
    # Each chart is well-formed XML with one bar per day of October, the dip below the objective in red.
    start = html.index("<svg")
    svg = ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])  # noqa: S314 (our own output)
    bars = svg.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 31
    assert [b.get("fill") for b in bars].count("#c9473d") == 1


def test_markdown_has_the_summary_table_and_the_drill() -> None:
    md = render(_report(), "md")
    assert "| api | team-web | 99.903 % | 99.900 % | yes | 43.2 min | 60.0 min | 3.000 % of 44.6 min |" in md
    assert "| db-failover | 2026-10-02 00:00 UTC | passed | 95 s | 5.0 min | yes |" in md
    assert "P1 1, P2 0, P3 4, P4 0, P5 0" in md


def test_json_carries_the_figures_and_derived_verdicts() -> None:
    data = json.loads(render(_report(), "json"))
    api = data["services"][0]
    assert api["met_objective"] is True
    assert api["sla"][0] == {"target": "respond", "met": 4, "breached": 1, "attainment_ratio": 0.8}
    assert api["drills"][0]["met_rto"] is True
    assert data["services"][1]["service"] == HOSTILE


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="html, md, json"):
        render(_report(), "pdf")


def test_a_drill_that_measured_nothing_is_shown_by_its_outcome_not_as_a_missed_rto() -> None:
    at = month("2026-10").start + 3600
    report = _report()
    drills = tuple(DrillResult(f"d-{o}", at, o, None, 300.0) for o in ("skipped", "interrupted", "error"))
    failed = DrillResult("d-failed", at, "failed", None, 300.0)  # never recovered: that is a missed RTO
    api = dataclasses.replace(report.services[0], drills=(*drills, failed))
    report = dataclasses.replace(report, services=(api,))
    md = render(report, "md")
    for outcome in ("skipped", "interrupted", "error"):
        assert f"| d-{outcome} | 2026-10-01 01:00 UTC | {outcome} | - | 5.0 min | {outcome} |" in md
    assert "| d-failed | 2026-10-01 01:00 UTC | failed | - | 5.0 min | NO |" in md
    data = json.loads(render(report, "json"))
    assert [d["met_rto"] for d in data["services"][0]["drills"]] == [None, None, None, False]
    html = render(report, "html")
    assert html.count(">NO</td>") == 1 and "<td>skipped</td></tr>" in html


def test_the_chart_of_a_month_to_date_has_day_wide_bars_and_distinct_labels() -> None:
    period = month("2026-12")
    days = tuple(day for day, _, _ in period.days)
    daily = (DayAvailability("2026-12-01", 1.0), DayAvailability("2026-12-02", 0.9995, partial=True))
    chart = availability_chart(daily, 0.999, days)
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / 31
    # Two bars, each the width of a day of December, at the first two days' slots: not stretched over the plot.
    assert [b.width for b in chart.bars] == [round(slot * 0.8, 2)] * 2
    assert chart.bars[1].x - chart.bars[0].x == pytest.approx(slot, abs=0.02)
    assert chart.bars[1].partial
    labels = [label for _, label in chart.ticks]
    assert len(set(labels)) == len(labels), labels
    assert [day for _, day, _ in chart.days] == ["2026-12-01", "2026-12-16", "2026-12-31"]
