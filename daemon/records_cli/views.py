"""How each record looks in a table (lists) and in a block (one record): pure functions of the API's JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from daemon.records_cli.table import (
    DIM,
    GREEN,
    RED,
    YELLOW,
    Cell,
    Style,
    age,
    block,
    clean,
    local,
    parse_time,
    render,
    span,
)

Json = dict[str, Any]
PRIORITY_COLOURS = {"P1": RED, "P2": RED, "P3": YELLOW}
STATUS_COLOURS = {
    "open": RED,
    "acknowledged": YELLOW,
    "resolved": GREEN,
    "closed": DIM,
    "candidate": YELLOW,
    "confirmed": YELLOW,
    "known_error": YELLOW,
    "succeeded": GREEN,
    "successful": GREEN,
    "failed": RED,
    "rolled_back": YELLOW,
    "rollback_failed": RED,
    "held": RED,
    "waiting_approval": YELLOW,
    "running": YELLOW,
}
NEAR = 0.25
"""An SLA clock with less than this share of its target left is shown as near (yellow)."""


def _status(value: object) -> Cell:
    text = clean(value)
    return text, STATUS_COLOURS.get(text)


def sla_cell(incident: Json, target: str, now: datetime) -> Cell:
    """What is left of one SLA clock: time left, overdue, breached, done or paused."""
    sla = incident.get("sla") or {}
    if target in (sla.get("breaches") or []):
        return "BREACHED", RED
    stopped_at = incident.get("acknowledged_at") if target == "respond" else incident.get("resolved_at")
    if stopped_at is not None or incident.get("status") in ("resolved", "closed"):
        return "met", GREEN
    deadline = parse_time(sla.get(f"{target}_by"))
    if deadline is None:
        return "-", None
    if sla.get("paused"):
        return "paused", DIM
    left = (deadline - now).total_seconds()
    if left < 0:
        return f"overdue {span(left)}", RED
    total = sla.get(f"{target}_target_seconds")
    near = isinstance(total, int | float) and total > 0 and left < NEAR * total
    return f"{span(left)} left", YELLOW if near else None


def incidents_table(incidents: Sequence[Json], style: Style, out: TextIO, now: datetime) -> None:
    rows = [
        [
            (str(i["id"]), None),
            (clean(i.get("priority")), PRIORITY_COLOURS.get(str(i.get("priority")))),
            _status(i.get("status")),
            (clean(i.get("service")), None),
            (clean(i.get("assignee") or "-"), None if i.get("assignee") else DIM),
            (age(i.get("opened_at"), now), None),
            sla_cell(i, "respond", now),
            sla_cell(i, "resolve", now),
            (str(i.get("alert_count", "-")), None),
            (clean(i.get("title")) + (" [flapping]" if i.get("flapping") else ""), None),
        ]
        for i in incidents
    ]
    render(
        ["ID", "PRI", "STATUS", "SERVICE", "ASSIGNEE", "AGE", "RESPOND", "RESOLVE", "ALERTS", "TITLE"], rows, style, out
    )


def incident_block(i: Json, style: Style, out: TextIO, now: datetime) -> None:
    respond, _ = sla_cell(i, "respond", now)
    resolve, _ = sla_cell(i, "resolve", now)
    block(
        [
            ("incident", i["id"]),
            ("title", i.get("title")),
            ("status", i.get("status")),
            ("priority", i.get("priority")),
            ("service", i.get("service")),
            ("assignee", i.get("assignee")),
            ("team", i.get("team")),
            ("key", i.get("key")),
            ("opened", local(i.get("opened_at"))),
            ("acknowledged", local(i.get("acknowledged_at"))),
            ("resolved", _resolved(i)),
            ("respond by", f"{local((i.get('sla') or {}).get('respond_by'))} ({respond})"),
            ("resolve by", f"{local((i.get('sla') or {}).get('resolve_by'))} ({resolve})"),
            ("flapping", ", ".join(i.get("flapping_alerts") or []) or "no"),
            ("problem", i.get("problem_id")),
            ("workaround", i.get("workaround")),
            ("suspected change", i.get("suspected_change")),
            ("external ticket", _external(i.get("external"))),
        ],
        style,
        out,
    )
    alerts = i.get("alerts") or []
    if alerts:
        print(f"\n{style.paint('alerts', '1')}", file=out)
        render(
            ["FINGERPRINT", "STATUS", "STARTS", "LABELS"],
            [
                [
                    (clean(a.get("fingerprint")), None),
                    _status(a.get("status")),
                    (local(a.get("starts_at")), None),
                    (_labels(a.get("labels")), None),
                ]
                for a in alerts
            ],
            style,
            out,
            limit=100,
        )
    timeline = i.get("timeline") or []
    if timeline:
        print(f"\n{style.paint('timeline', '1')}", file=out)
        render(
            ["AT", "WHAT", "DETAIL"],
            [
                [(local(t.get("at")), None), (clean(t.get("kind")), None), (_detail(t.get("detail")), None)]
                for t in timeline
            ],
            style,
            out,
            limit=120,
        )


def _external(ticket: object) -> str | None:
    if not isinstance(ticket, dict):
        return None
    return f"{ticket.get('system')} {ticket.get('key')} {ticket.get('url')}"


def _resolved(i: Json) -> str:
    at = local(i.get("resolved_at"))
    by = i.get("resolved_by")
    return f"{at} (by {clean(by)})" if by and at != "-" else at


def _labels(labels: object) -> str:
    if not isinstance(labels, dict):
        return "-"
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _detail(detail: object) -> str:
    if not detail:
        return ""
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def problems_table(problems: Sequence[Json], style: Style, out: TextIO, now: datetime) -> None:
    rows = [
        [
            (str(p["id"]), None),
            _status(p.get("status")),
            (clean(p.get("service")), None),
            (str(len(p.get("incidents") or [])), None),
            (age(p.get("opened_at"), now), None),
            (clean(p.get("title")), None),
        ]
        for p in problems
    ]
    render(["ID", "STATUS", "SERVICE", "INCIDENTS", "AGE", "TITLE"], rows, style, out)


def problem_block(p: Json, style: Style, out: TextIO) -> None:
    block(
        [
            ("problem", p["id"]),
            ("title", p.get("title")),
            ("status", p.get("status")),
            ("service", p.get("service")),
            ("signature", p.get("signature")),
            ("opened", local(p.get("opened_at"))),
            ("resolved", local(p.get("resolved_at"))),
            ("root cause", p.get("root_cause") or "-"),
            ("workaround", p.get("workaround") or "-"),
            ("runbook", p.get("runbook")),
            ("incidents", ", ".join(str(n) for n in p.get("incidents") or []) or "-"),
        ],
        style,
        out,
    )


def changes_table(changes: Sequence[Json], style: Style, out: TextIO, now: datetime) -> None:
    rows = [
        [
            (str(c["id"]), None),
            (clean(c.get("type")), RED if c.get("type") == "emergency" else None),
            _status(c.get("outcome") or "open"),
            (clean(c.get("service")), None),
            (clean(c.get("runbook")), None),
            (str(c.get("run_id") if c.get("run_id") is not None else "-"), None),
            (age(c.get("created_at"), now), None),
            (clean(c.get("requested_by")), None),
        ]
        for c in changes
    ]
    render(["ID", "TYPE", "OUTCOME", "SERVICE", "RUNBOOK", "RUN", "AGE", "REQUESTED BY"], rows, style, out)


def change_block(c: Json, style: Style, out: TextIO) -> None:
    block(
        [
            ("change", c["id"]),
            ("type", c.get("type")),
            ("risk", c.get("risk")),
            ("outcome", c.get("outcome") or "open"),
            ("runbook", f"{clean(c.get('runbook'))} ({clean(c.get('runbook_version'))})"),
            ("run", c.get("run_id")),
            ("mode", c.get("mode")),
            ("service", c.get("service")),
            ("incident", c.get("incident_id")),
            ("requested by", c.get("requested_by")),
            ("reason", c.get("reason") or "-"),
            ("created", local(c.get("created_at"))),
            ("started", local(c.get("started_at"))),
            ("ended", local(c.get("ended_at"))),
            ("suspected for", ", ".join(str(n) for n in c.get("suspected_incidents") or []) or "-"),
        ],
        style,
        out,
    )
    events = c.get("events") or []
    if events:
        print(f"\n{style.paint('events', '1')}", file=out)
        render(
            ["AT", "WHAT", "DETAIL"],
            [
                [(local(e.get("at")), None), (clean(e.get("kind")), None), (_detail(e.get("detail")), None)]
                for e in events
            ],
            style,
            out,
            limit=120,
        )


def runs_table(runs: Sequence[Json], style: Style, out: TextIO, now: datetime) -> None:
    rows = [
        [
            (str(r["id"]), None),
            (clean(r.get("runbook")), None),
            (clean(r.get("mode")), None),
            _status(r.get("status")),
            (clean(r.get("service")), None),
            (str(r.get("incident_id") if r.get("incident_id") is not None else "-"), None),
            (age(r.get("created_at"), now), None),
            (clean(r.get("reason") or ""), None),
        ]
        for r in runs
    ]
    render(["ID", "RUNBOOK", "MODE", "STATUS", "SERVICE", "INCIDENT", "AGE", "REASON"], rows, style, out)


def run_block(r: Json, style: Style, out: TextIO) -> None:
    block(
        [
            ("run", r["id"]),
            ("runbook", f"{clean(r.get('runbook'))} ({clean(r.get('version'))})"),
            ("mode", r.get("mode")),
            ("status", r.get("status")),
            ("reason", r.get("reason") or "-"),
            ("params", _labels(r.get("params"))),
            ("requested by", r.get("requested_by")),
            ("service", r.get("service")),
            ("incident", r.get("incident_id")),
            ("change", r.get("change_id")),
            ("lock", r.get("lock_key")),
            ("started", local(r.get("started_at"))),
            ("ended", local(r.get("ended_at"))),
        ],
        style,
        out,
    )
    steps = r.get("steps") or []
    if steps:
        print(f"\n{style.paint('steps', '1')}", file=out)
        render(
            ["#", "STEP", "ACTION", "PHASE", "STATUS", "TRIES", "TOOK", "SUMMARY"],
            [
                [
                    (str(int(s.get("index", 0)) + 1), None),
                    (clean(s.get("name")), None),
                    (clean(s.get("action")), None),
                    (clean(s.get("phase")), None),
                    _status(s.get("status")),
                    (str(s.get("attempts") or 0), None),
                    (_took(s.get("duration_seconds")), None),
                    (clean(s.get("summary") or ""), None),
                ]
                for s in steps
            ],
            style,
            out,
            limit=100,
        )


def _took(seconds: object) -> str:
    return f"{seconds:.2f}s" if isinstance(seconds, int | float) else "-"
