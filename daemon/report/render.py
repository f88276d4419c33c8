"""Renderers of a Report: JSON for machines, Markdown for tickets and wikis, HTML for people."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.report.chart import availability_chart
from daemon.report.model import PRIORITIES, Report, ServiceReport
from daemon.report.period import month

FORMATS = ("html", "md", "json")
HTML_BODY = "html-body"
"""Not a format of the API or the files: the HTML report's body alone, without its inline <style>, for the
console, whose Content-Security-Policy allows no inline style (console.css styles it there)."""

# Our own templates, but the values (service names, owners, drill names) come from config and alerts:
# autoescape keeps them text, and the sandbox keeps a template mistake from reaching Python internals.
_env = ImmutableSandboxedEnvironment(
    loader=PackageLoader("daemon.report", "templates"),
    autoescape=select_autoescape(["html.j2"], default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _service_dict(s: ServiceReport) -> dict[str, Any]:
    out = dataclasses.asdict(s)
    out["met_objective"] = s.met_objective
    out["sla"] = [{**dataclasses.asdict(f), "attainment_ratio": f.attainment_ratio} for f in s.sla]
    out["drills"] = [{**dataclasses.asdict(d), "met_rto": d.met_rto} for d in s.drills]
    return out


def to_dict(report: Report) -> dict[str, Any]:
    out = dataclasses.asdict(report)
    out["services"] = [_service_dict(s) for s in report.services]
    c = report.coverage
    out["coverage"] = {
        **dataclasses.asdict(c),
        "no_data": c.no_data,
        "start_local": _iso(c.start, report.time_zone),
        "end_local": _iso(c.end, report.time_zone),
        "statement": coverage_statement(report),
    }
    return out


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(report), indent=2, sort_keys=True) + "\n"
    values = {
        "r": report,
        "priorities": PRIORITIES,
        "fmt": _formatter(report.time_zone),
        "span": coverage_statement(report),
    }
    if fmt == "md":
        return _env.get_template("report.md.j2").render(**values)
    if fmt in ("html", HTML_BODY):
        days = tuple(day for day, _, _ in month(report.period, report.time_zone).days)
        charts = {s.service: availability_chart(s.daily, s.objective_ratio, days) for s in report.services}
        template = "report.html.j2" if fmt == "html" else "report_body.html.j2"
        return _env.get_template(template).render(**values, charts=charts)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def coverage_statement(report: Report) -> str:
    """One sentence on what the figures cover; the same words in every format."""
    c = report.coverage
    fmt = _formatter(report.time_zone)
    if c.start is None or c.end is None:
        if report.generated_at < report.start:
            why = "the period has not begun"
        elif c.first_record_at is None:
            why = "the store holds no records"
        else:
            why = f"the period ends before the store's first record ({fmt('instant', c.first_record_at)})"
        return f"No data: {why}; no availability or error budget is stated."
    start = fmt("instant", c.start) + (" (the store's first record)" if c.from_first_record else "")
    end = fmt("instant", c.end) + (" (the time of this report)" if c.to_date else "")
    whole = c.start == report.start and c.end == report.end
    what = "the whole period" if whole else ("the period to date" if c.to_date else "part of the period")
    return f"Figures cover {what}: {start} to {end}."


def _iso(value: float | None, tz: str) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, ZoneInfo(tz)).isoformat()


def _formatter(tz: str) -> Callable[[str, float | None], str]:
    zone = ZoneInfo(tz)

    def fmt(kind: str, value: float | None) -> str:
        """Figures as people read them; one place so Markdown and HTML agree. Times in the report's zone."""
        if value is None:
            return "-"
        if kind == "ratio":
            return f"{value * 100:.3f} %"
        if kind == "duration":
            seconds = round(value)
            if seconds < 120:
                return f"{seconds} s"
            if seconds < 7200:
                return f"{seconds / 60:.1f} min"
            return f"{seconds / 3600:.1f} h"
        if kind in ("time", "instant"):
            # "instant": to the second, for the bounds of the span covered, which are exact.
            local = datetime.fromtimestamp(value, zone)
            text = local.strftime("%Y-%m-%d %H:%M:%S %Z" if kind == "instant" else "%Y-%m-%d %H:%M %Z")
            # An abbreviation such as CET or IST can be ambiguous; the offset is not.
            return text if local.utcoffset() == timedelta(0) else f"{text} ({local.strftime('%z')})"
        raise ValueError(kind)

    return fmt
