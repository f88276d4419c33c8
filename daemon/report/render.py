"""Renderers of a Report: JSON for machines, Markdown for tickets and wikis, HTML for people."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.report.chart import availability_chart
from daemon.report.model import PRIORITIES, Report, ServiceReport

FORMATS = ("html", "md", "json")

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
    return out


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(report), indent=2, sort_keys=True) + "\n"
    if fmt == "md":
        return _env.get_template("report.md.j2").render(r=report, priorities=PRIORITIES, fmt=_fmt)
    if fmt == "html":
        charts = {s.service: availability_chart(s.daily, s.objective_ratio) for s in report.services}
        return _env.get_template("report.html.j2").render(r=report, priorities=PRIORITIES, fmt=_fmt, charts=charts)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def _fmt(kind: str, value: float | None) -> str:
    """Figures as people read them; one place so Markdown and HTML agree."""
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
    if kind == "time":
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    raise ValueError(kind)
