"""What the problem, change and run pages show, computed from the API's JSON (the same JSON the CLI reads).

Times become UTC text and durations short spans; every value stays data, escaped by the templates.
"""

from __future__ import annotations

from typing import Any

from daemon.console.views import _when

Json = dict[str, Any]
RUN_CLASSES = {
    "succeeded": "ok",
    "failed": "bad",
    "rollback_failed": "bad",
    "rolled_back": "warn",
    "aborted": "warn",
    "rejected": "warn",
    "held": "bad",
    "waiting_approval": "warn",
    "running": "run",
    "rolling_back": "run",
}
"""A run's or step's status -> CSS class of its badge."""


def when(value: object) -> str:
    """An RFC 3339 time as UTC text, the incident pages' way; empty when there is none."""
    return _when(value)


def took(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return ""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    return f"{minutes}m{int(seconds % 60):02d}s" if minutes < 120 else f"{minutes // 60}h{minutes % 60:02d}m"


def run_row(r: Json) -> Json:
    return {
        "id": r["id"],
        "runbook": r["runbook"],
        "status": r["status"],
        "class": RUN_CLASSES.get(r["status"], ""),
        "mode": r["mode"],
        "trigger": r["trigger"],
        "requested_by": r["requested_by"],
        "service": r.get("service"),
        "incident_id": r.get("incident_id"),
        "emergency": bool(r.get("emergency")),
        "created": when(r.get("created_at")),
        "took": took(r.get("duration_seconds")),
        "change_id": r.get("change_id"),
    }


def run_view(r: Json) -> Json:
    approval = r.get("approval")
    return {
        **run_row(r),
        "reason": r.get("reason") or "",
        "version": r.get("version", ""),
        "params": sorted((r.get("params") or {}).items()),
        "lock_key": r.get("lock_key"),
        "lock_scope": r.get("lock_scope"),
        "started": when(r.get("started_at")),
        "ended": when(r.get("ended_at")),
        "approval": None
        if approval is None
        else {
            "message": approval.get("message") or "",
            "who": approval.get("who") or [],
            "requested": when(approval.get("requested_at")),
            "expires": when(approval.get("expires_at")),
            "expires_at": approval.get("expires_at") or "",
            "decision": approval.get("decision"),
            "by": approval.get("by"),
            "on_behalf_of": approval.get("on_behalf_of"),
            "reason": approval.get("reason") or "",
            "decided": when(approval.get("decided_at")),
        },
        "steps": [
            {
                "index": s["index"],
                "name": s["name"],
                "action": s.get("action", ""),
                "phase": s["phase"],
                "status": s["status"],
                "class": RUN_CLASSES.get(s["status"], ""),
                "attempts": s.get("attempts", 0),
                "started": when(s.get("started_at")),
                "took": took(s.get("duration_seconds")),
                "summary": s.get("summary") or "",
                "output": s.get("output") or "",
            }
            for s in r.get("steps", [])
        ],
    }


def change_row(c: Json) -> Json:
    return {
        "id": c["id"],
        "run_id": c.get("run_id"),
        "runbook": c.get("runbook"),
        "type": c.get("type"),
        "risk": c.get("risk"),
        "service": c.get("service"),
        "incident_id": c.get("incident_id"),
        "requested_by": c.get("requested_by"),
        "trigger": c.get("trigger"),
        "run_status": c.get("run_status"),
        "outcome": c.get("outcome"),
        "class": {"successful": "ok", "failed": "bad", "rollback_failed": "bad"}.get(c.get("outcome") or "", ""),
        "mode": c.get("mode"),
        "created": when(c.get("created_at")),
        "ended": when(c.get("ended_at")),
    }


def problem_row(p: Json) -> Json:
    return {
        "id": p["id"],
        "title": p.get("title", ""),
        "service": p.get("service", ""),
        "status": p["status"],
        "opened": when(p.get("opened_at")),
        "updated": when(p.get("updated_at")),
        "resolved": when(p.get("resolved_at")),
        "incident_count": p.get("incident_count", 0),
    }
