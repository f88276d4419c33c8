"""Incident rows (the incident, its alert links, its timeline): the statements the correlator writes, loading
the incidents a starting daemon holds in memory, and the API's and console's incident reads.

Incident search (filters, label matchers, counts) is daemon.storage.incident_search, on the same select.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daemon.model import Incident, IncidentStatus, SlaClock, TimelineEntry
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql, row_json
from daemon.storage.timestamps import rfc3339

Json = dict[str, Any]

_MUTABLE = (
    "title, status, resolved_at, reopen_count, priority, rule, signature, acknowledged_at, closed_at, "
    "resolved_by, last_attached_at, respond_by, resolve_by, sla, flapping, problem_id, workaround, suspected_change, "
    "assignee, team, external"
)
_WRITTEN = f"id, key, service, opened_at, {_MUTABLE}"
# Incidents first (negative order): links, timeline, problems, changes and audit rows reference them.
INCIDENT = Statement(
    f"INSERT INTO incidents ({_WRITTEN}) VALUES ({','.join('?' * len(_WRITTEN.split(',')))}) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _MUTABLE.split(",")),
    order=-20,
)
LINK = Statement(
    "INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, attached_at, ended_at) "
    "VALUES (?,?,?,?,?) ON CONFLICT (incident_id, fingerprint, starts_at) DO UPDATE SET ended_at = excluded.ended_at",
    order=-10,
)
TIMELINE = Statement("INSERT INTO timeline (incident_id, at, kind, detail) VALUES (?,?,?,?)", order=-10)
_COLUMNS = (
    "id, key, service, title, status, opened_at, resolved_at, reopen_count, priority, rule, signature, "
    "acknowledged_at, closed_at, resolved_by, last_attached_at, respond_by, resolve_by, sla, flapping, problem_id, "
    "workaround, suspected_change, assignee, team, external"
)


def sla_json(sla: SlaClock) -> str:
    return row_json(
        {
            "respond_target": sla.respond_target,
            "resolve_target": sla.resolve_target,
            "counted": sla.counted,
            "since": sla.since,
            "breaches": sorted(sla.breaches),
            "at_risk": sorted(sla.at_risk),
        }
    )


def incident_row(i: Incident) -> tuple[Any, ...]:
    """In the column order of _WRITTEN."""
    return (
        i.id,
        i.key,
        i.service,
        i.opened_at,
        i.title,
        i.status.value,
        i.resolved_at,
        i.reopen_count,
        i.priority,
        i.rule,
        i.signature,
        i.acknowledged_at,
        i.closed_at,
        i.resolved_by,
        i.last_attached_at,
        i.sla.respond_by,
        i.sla.resolve_by,
        sla_json(i.sla),
        row_json(sorted(i.flapping)),
        i.problem_id,
        i.workaround,
        i.suspected_change,
        i.assignee,
        i.team,
        row_json(i.external) if i.external else None,
    )


def timeline_row(t: TimelineEntry) -> tuple[Any, ...]:
    return (t.incident_id, t.at, t.kind, row_json(t.detail))


def _from_row(r: Row) -> Incident:
    sla = json.loads(r["sla"])
    return Incident(
        id=r["id"],
        key=r["key"],
        service=r["service"],
        title=r["title"],
        status=IncidentStatus(r["status"]),
        opened_at=r["opened_at"],
        resolved_at=r["resolved_at"],
        reopen_count=r["reopen_count"],
        priority=r["priority"],
        rule=r["rule"],
        signature=r["signature"],
        acknowledged_at=r["acknowledged_at"],
        closed_at=r["closed_at"],
        resolved_by=r["resolved_by"],
        last_attached_at=r["last_attached_at"],
        sla=SlaClock(
            respond_target=sla.get("respond_target"),
            resolve_target=sla.get("resolve_target"),
            counted=sla.get("counted", 0.0),
            since=sla.get("since"),
            respond_by=r["respond_by"],
            resolve_by=r["resolve_by"],
            breaches=set(sla.get("breaches", [])),
            at_risk=set(sla.get("at_risk", [])),
        ),
        flapping=set(json.loads(r["flapping"])),
        problem_id=r["problem_id"],
        workaround=r["workaround"],
        suspected_change=r["suspected_change"],
        assignee=r["assignee"],
        team=r["team"],
        external=json.loads(r["external"]) if r["external"] else None,
    )


def load_incidents(sql: Sql) -> tuple[list[Incident], int]:
    """Every incident not yet closed, with its attached alerts; and the next free id.

    Flapping marks are kept; the state changes they were counted from are not stored, so the correlator's
    restore re-arms them (they end one flapping window after the restart unless the alert keeps flapping).
    """
    incidents: dict[int, Incident] = {}
    for r in sql.rows(f"SELECT {_COLUMNS} FROM incidents WHERE status != ?", (IncidentStatus.CLOSED.value,)):
        incident = _from_row(r)
        incidents[incident.id] = incident
    if incidents:
        marks = ",".join("?" * len(incidents))
        for link in sql.rows(
            "SELECT incident_id, fingerprint, starts_at, attached_at, ended_at FROM incident_alerts "
            f"WHERE incident_id IN ({marks})",
            list(incidents),
        ):
            incident = incidents[link["incident_id"]]
            incident.fingerprints.add(link["fingerprint"])
            if link["ended_at"] is None:
                incident.firing[link["fingerprint"]] = (link["starts_at"], link["attached_at"])
        for incident in incidents.values():
            if incident.status.active:
                _restore_end(sql, incident)
    max_id = sql.scalar("SELECT coalesce(max(id), 0) FROM incidents")
    return list(incidents.values()), int(max_id) + 1


_EPISODE_ENDS = "kind IN ('opened', 'reopened', 'alert_resolved', 'alert_expired')"


def _restore_end(sql: Sql, incident: Incident) -> None:
    """The latest alert end of the current episode, from the timeline entries the correlator wrote for it
    (the same clamping: not before the episode began, not after the entry was recorded)."""
    # Both reads name the partial index's condition word for word (timeline_episode_ends): a planner uses a
    # partial index only where the query's WHERE visibly implies the index's own.
    entries = sql.rows(
        f"SELECT at, kind, detail FROM timeline WHERE incident_id = ? AND id >= coalesce("
        f"(SELECT max(id) FROM timeline WHERE incident_id = ? AND {_EPISODE_ENDS} AND kind IN ('opened', 'reopened'))"
        f", 0) AND {_EPISODE_ENDS} ORDER BY id",
        (incident.id, incident.id),
    )
    began = incident.opened_at
    for entry in entries:
        at = entry["at"]
        if entry["kind"] in ("opened", "reopened"):
            began = at
            continue
        data = json.loads(entry["detail"])
        ended = data.get("ended_at")
        if not isinstance(ended, int | float):
            continue
        end = min(max(float(ended), began), at)
        if incident.ended_at is None or end >= incident.ended_at:
            source = data.get("end_source")
            incident.ended_at, incident.end_source = end, source if isinstance(source, str) else None


def recent_signatures(sql: Sql, since: float) -> list[tuple[str, float, int]]:
    """(signature, opened_at, id) of incidents opened since `since` and not part of any problem, oldest
    first: the recurrence history a new candidate problem is counted from."""
    return [
        (r["signature"], r["opened_at"], r["id"])
        for r in sql.rows(
            "SELECT signature, opened_at, id FROM incidents WHERE opened_at >= ? AND signature != '' "
            "AND id NOT IN (SELECT incident_id FROM problem_incidents) ORDER BY opened_at, id",
            (since,),
        )
    ]


def incident_exists(sql: Sql, incident_id: int) -> bool:
    return sql.one("SELECT 1 AS found FROM incidents WHERE id = ?", (incident_id,)) is not None


def open_by_service(sql: Sql) -> dict[str, int]:
    """Open and acknowledged incidents per service."""
    found = sql.rows(
        "SELECT service, count(*) AS n FROM incidents WHERE status IN ('open', 'acknowledged') GROUP BY service"
    )
    return {str(r["service"]): int(r["n"]) for r in found}


# -- the API's and console's reads ----------------------------------------------------------------------


@dataclass(frozen=True)
class AssignmentFilter:
    """Which incidents a list shows by who works them: any (the default), nobody, or one assignee; and of one
    team or any."""

    assignee: str | None = None
    unassigned: bool = False
    team: str | None = None
    team_services: tuple[str, ...] = ()
    """The services whose catalogue team is `team`: an incident with no team recorded counts for its
    service's team."""

    def where(self) -> tuple[list[str], list[Any]]:
        """SQL conditions on `incidents i`, and their arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        if self.unassigned:
            clauses.append("i.assignee IS NULL")
        elif self.assignee is not None:
            clauses.append("i.assignee = ?")
            args.append(self.assignee)
        if self.team is not None:
            by_service = ""
            if self.team_services:
                by_service = f" OR (i.team IS NULL AND i.service IN ({','.join('?' * len(self.team_services))}))"
            clauses.append(f"(i.team = ?{by_service})")
            args.extend([self.team, *self.team_services])
        return clauses, args


ANY = AssignmentFilter()

_LATEST_RESOLVED = "FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'resolved' ORDER BY t.id DESC LIMIT 1"
INCIDENT_SELECT = (
    "SELECT i.id, i.key, i.status, i.service, i.title, i.opened_at, i.resolved_at, i.reopen_count, "
    "(SELECT count(DISTINCT fingerprint) FROM incident_alerts a WHERE a.incident_id = i.id) AS alert_count, "
    "i.priority, i.rule, i.signature, i.acknowledged_at, i.closed_at, i.resolved_by, i.respond_by, i.resolve_by, "
    "i.sla, i.flapping, i.suspected_change, i.workaround, "
    "(SELECT p.problem_id FROM problem_incidents p WHERE p.incident_id = i.id ORDER BY p.problem_id DESC LIMIT 1) "
    "AS problem_id, "
    f"(SELECT t.at {_LATEST_RESOLVED}) AS resolved_recorded_at, "
    f"(SELECT t.detail {_LATEST_RESOLVED}) AS resolved_detail, "
    "i.assignee, i.team, i.external "
    "FROM incidents i"
)
"""Every column incident_json reads, on `incidents i`: add WHERE / ORDER BY / LIMIT."""


def _resolution(r: Row) -> Json | None:
    """How the incident ended, from its latest `resolved` timeline entry: when it ended, when that was
    recorded, and whether the end is estimated (an expiry) and from what."""
    if r["status"] not in ("resolved", "closed") or r["resolved_detail"] is None:
        return None
    data = json.loads(r["resolved_detail"])
    return {
        "ended_at": rfc3339(r["resolved_at"]),
        "recorded_at": rfc3339(r["resolved_recorded_at"]),
        "resolved_by": r["resolved_by"],
        "end_estimated": bool(data.get("end_estimated", False)),
        "end_source": data.get("end_source"),
    }


def incident_json(r: Row) -> Json:
    """An incident as the API answers it, from a row of INCIDENT_SELECT."""
    sla = json.loads(r["sla"])
    flapping = json.loads(r["flapping"])
    paused_by_status = sla.get("since") is None and r["status"] in ("open", "acknowledged")
    return {
        "id": r["id"],
        "key": r["key"],
        "status": r["status"],
        "service": r["service"],
        "title": r["title"],
        "priority": r["priority"],
        "opened_at": rfc3339(r["opened_at"]),
        "acknowledged_at": rfc3339(r["acknowledged_at"]),
        "resolved_at": rfc3339(r["resolved_at"]),
        "closed_at": rfc3339(r["closed_at"]),
        "resolved_by": r["resolved_by"],
        "assignee": r["assignee"],
        "team": r["team"],
        "reopen_count": r["reopen_count"],
        "alert_count": r["alert_count"],
        "rule": r["rule"],
        "signature": r["signature"],
        "sla": {
            "respond_by": rfc3339(r["respond_by"]),
            "resolve_by": rfc3339(r["resolve_by"]),
            "respond_target_seconds": sla.get("respond_target"),
            "resolve_target_seconds": sla.get("resolve_target"),
            "paused": paused_by_status,
            "paused_by": "status" if paused_by_status else None,
            "breaches": sorted(sla.get("breaches", [])),
        },
        "resolution": _resolution(r),
        "flapping": bool(flapping),
        "flapping_alerts": flapping,
        "problem_id": r["problem_id"],
        "workaround": r["workaround"],
        "suspected_change": r["suspected_change"],
        "external": json.loads(r["external"]) if r["external"] else None,
    }


def read_incidents(
    sql: Sql, status: str | None, limit: int, offset: int, assignment: AssignmentFilter = ANY
) -> list[Json]:
    statuses = status.split(",") if status else []
    clauses, args = assignment.where()
    if statuses:
        clauses.insert(0, f"i.status IN ({','.join('?' * len(statuses))})")
        args[:0] = statuses
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    # The page's ids first: with the per-incident subqueries in the same SELECT, SQLite computed them for every
    # matching incident before sorting (519 ms for the first 100 of 10k open incidents, against ~30 ms).
    page = f"SELECT i.id FROM incidents i {where} ORDER BY i.id DESC LIMIT ? OFFSET ?"
    found = sql.rows(f"{INCIDENT_SELECT} WHERE i.id IN ({page}) ORDER BY i.id DESC", [*args, limit, offset])
    return [incident_json(r) for r in found]


def read_incident(sql: Sql, incident_id: int) -> Json | None:
    """One incident with its alert episodes and its timeline."""
    r = sql.one(f"{INCIDENT_SELECT} WHERE i.id = ?", (incident_id,))
    if r is None:
        return None
    out = incident_json(r)
    out["alerts"] = [
        {
            "fingerprint": a["fingerprint"],
            "labels": json.loads(a["labels"]),
            "annotations": json.loads(a["annotations"]),
            "status": _episode_status(a["ended_at"], a["status_now"], a["starts_at"], a["starts_now"]),
            "starts_at": rfc3339(a["starts_at"]),
            "ends_at": rfc3339(a["ended_at"]),
            "attached_at": rfc3339(a["attached_at"]),
        }
        for a in sql.rows(
            "SELECT l.fingerprint, l.starts_at, l.attached_at, l.ended_at, a.labels, a.annotations, "
            "a.status AS status_now, a.starts_at AS starts_now "
            "FROM incident_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint "
            "WHERE l.incident_id = ? ORDER BY l.attached_at, l.fingerprint",
            (incident_id,),
        )
    ]
    out["timeline"] = [
        {"at": rfc3339(t["at"]), "kind": t["kind"], "detail": json.loads(t["detail"])}
        for t in sql.rows("SELECT at, kind, detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    ]
    return out


def _episode_status(ended: float | None, status_now: str, starts: float, starts_now: float) -> str:
    """An incident lists alert episodes; only the alert's latest episode can be the expired one."""
    if ended is None:
        return "firing"
    return "expired" if status_now == "expired" and starts == starts_now else "resolved"
