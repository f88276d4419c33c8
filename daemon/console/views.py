"""What the pages show of an incident, computed from the API's JSON (the same JSON the CLI reads).

SLA cells are the CLI's (time left, overdue, BREACHED, met, paused), so the terminal and the browser say the same
thing; their colour becomes a CSS class here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from daemon.console.security import safe_url
from daemon.records_cli.table import DIM, GREEN, RED, YELLOW, age, parse_time
from daemon.records_cli.views import sla_cell

Json = dict[str, Any]
CLASSES = {RED: "bad", YELLOW: "warn", GREEN: "ok", DIM: "muted", None: ""}


def _when(value: object) -> str:
    at = parse_time(value)
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sla(incident: Json, target: str, now: datetime) -> dict[str, str]:
    text, colour = sla_cell(incident, target, now)
    deadline = (incident.get("sla") or {}).get(f"{target}_by") or ""
    return {"text": text, "class": CLASSES.get(colour, ""), "deadline": deadline if text.endswith("left") else ""}


def incident_row(i: Json, now_ts: float) -> Json:
    now = datetime.fromtimestamp(now_ts, UTC)
    return {
        "id": i["id"],
        "title": i["title"],
        "status": i["status"],
        "priority": i["priority"],
        "service": i["service"],
        "age": age(i.get("opened_at"), now),
        "opened": _when(i.get("opened_at")),
        "respond": _sla(i, "respond", now),
        "resolve": _sla(i, "resolve", now),
        "alerts": i.get("alert_count", 0),
        "flapping": bool(i.get("flapping")),
        "active": i["status"] in ("open", "acknowledged"),
    }


def incident_view(i: Json, now_ts: float) -> Json:
    now = datetime.fromtimestamp(now_ts, UTC)
    return {
        **incident_row(i, now_ts),
        "key": i.get("key"),
        "rule": i.get("rule"),
        "acknowledged": _when(i.get("acknowledged_at")),
        "resolved": _when(i.get("resolved_at")),
        "resolved_by": i.get("resolved_by"),
        "closed": _when(i.get("closed_at")),
        "reopen_count": i.get("reopen_count", 0),
        "problem_id": i.get("problem_id"),
        "workaround": i.get("workaround"),
        "suspected_change": i.get("suspected_change"),
        "external": i.get("external"),
        "external_link": safe_url((i.get("external") or {}).get("url")),
        "flapping_alerts": i.get("flapping_alerts") or [],
        "alerts_list": [
            {
                "fingerprint": a.get("fingerprint"),
                "status": a.get("status"),
                "starts": _when(a.get("starts_at")),
                "ends": _when(a.get("ends_at")),
                "labels": sorted((a.get("labels") or {}).items()),
                "annotations": sorted((a.get("annotations") or {}).items()),
                "link": safe_url(a.get("generator_url")),
            }
            for a in i.get("alerts", [])
        ],
        "timeline": [
            {
                "at": _when(t.get("at")),
                "kind": t.get("kind"),
                "by": (t.get("detail") or {}).get("by"),
                "detail": _detail(t.get("detail") or {}),
            }
            for t in i.get("timeline", [])
        ],
        "age_now": age(i.get("opened_at"), now),
    }


def _detail(detail: Json) -> str:
    shown = {k: v for k, v in detail.items() if k != "by"}
    return json.dumps(shown, sort_keys=True, ensure_ascii=False) if shown else ""


def sla_view(i: Json, now_ts: float) -> list[Json]:
    now = datetime.fromtimestamp(now_ts, UTC)
    sla = i.get("sla") or {}
    out = []
    for target in ("respond", "resolve"):
        cell = _sla(i, target, now)
        out.append(
            {
                "target": target,
                "by": _when(sla.get(f"{target}_by")),
                "seconds": sla.get(f"{target}_target_seconds"),
                **cell,
            }
        )
    return out
