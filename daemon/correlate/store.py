"""Incident rows (the incident, its alert links, its timeline) and loading the incidents a starting daemon
holds in memory."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from daemon.model import Incident, IncidentStatus, SlaClock, TimelineEntry
from daemon.storage.database import Statement

_MUTABLE = (
    "title, status, resolved_at, reopen_count, priority, rule, signature, acknowledged_at, closed_at, "
    "resolved_by, last_attached_at, respond_by, resolve_by, sla, flapping, problem_id, workaround, suspected_change, "
    "assignee, team, external"
)
_WRITTEN = f"id, key, service, opened_at, {_MUTABLE}"
# Incidents first (negative order): links, timeline, problems, changes and audit rows reference them.
INCIDENT = Statement(
    f"INSERT INTO incidents ({_WRITTEN}) VALUES ({','.join('?' * len(_WRITTEN.split(',')))}) "  # noqa: S608
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _MUTABLE.split(",")),
    order=-20,
)
LINK = Statement(
    "INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, attached_at, ended_at) "
    "VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET ended_at = excluded.ended_at",
    order=-10,
)
TIMELINE = Statement("INSERT INTO timeline (incident_id, at, kind, detail) VALUES (?,?,?,?)", order=-10)
_COLUMNS = (
    "id, key, service, title, status, opened_at, resolved_at, reopen_count, priority, rule, signature, "
    "acknowledged_at, closed_at, resolved_by, last_attached_at, sla, flapping, problem_id, workaround, "
    "suspected_change, assignee, team, external"
)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def sla_json(sla: SlaClock) -> str:
    return _dump(
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
        _dump(sorted(i.flapping)),
        i.problem_id,
        i.workaround,
        i.suspected_change,
        i.assignee,
        i.team,
        _dump(i.external) if i.external else None,
    )


def timeline_row(t: TimelineEntry) -> tuple[Any, ...]:
    return (t.incident_id, t.at, t.kind, _dump(t.detail))


def _from_row(r: tuple[Any, ...], respond_by: float | None, resolve_by: float | None) -> Incident:
    sla = json.loads(r[15])
    return Incident(
        id=r[0],
        key=r[1],
        service=r[2],
        title=r[3],
        status=IncidentStatus(r[4]),
        opened_at=r[5],
        resolved_at=r[6],
        reopen_count=r[7],
        priority=r[8],
        rule=r[9],
        signature=r[10],
        acknowledged_at=r[11],
        closed_at=r[12],
        resolved_by=r[13],
        last_attached_at=r[14],
        sla=SlaClock(
            respond_target=sla.get("respond_target"),
            resolve_target=sla.get("resolve_target"),
            counted=sla.get("counted", 0.0),
            since=sla.get("since"),
            respond_by=respond_by,
            resolve_by=resolve_by,
            breaches=set(sla.get("breaches", [])),
            at_risk=set(sla.get("at_risk", [])),
        ),
        flapping=set(json.loads(r[16])),
        problem_id=r[17],
        workaround=r[18],
        suspected_change=r[19],
        assignee=r[20],
        team=r[21],
        external=json.loads(r[22]) if r[22] else None,
    )


def load_incidents(conn: sqlite3.Connection) -> tuple[list[Incident], int]:
    """Every incident not yet closed, with its attached alerts; and the next free id.

    Flapping marks are kept; the state changes they were counted from are not stored, so the correlator's
    restore re-arms them (they end one flapping window after the restart unless the alert keeps flapping).
    """
    incidents: dict[int, Incident] = {}
    for r in conn.execute(
        f"SELECT {_COLUMNS}, respond_by, resolve_by FROM incidents WHERE status != ?",  # noqa: S608
        (IncidentStatus.CLOSED.value,),
    ):
        incident = _from_row(r[:-2], r[-2], r[-1])
        incidents[incident.id] = incident
    if incidents:
        marks = ",".join("?" * len(incidents))
        for incident_id, fingerprint, starts_at, attached_at, ended_at in conn.execute(
            "SELECT incident_id, fingerprint, starts_at, attached_at, ended_at FROM incident_alerts "  # noqa: S608
            f"WHERE incident_id IN ({marks})",
            list(incidents),
        ):
            incident = incidents[incident_id]
            incident.fingerprints.add(fingerprint)
            if ended_at is None:
                incident.firing[fingerprint] = (starts_at, attached_at)
        for incident in incidents.values():
            if incident.status.active:
                _restore_end(conn, incident)
    max_id = conn.execute("SELECT coalesce(max(id), 0) FROM incidents").fetchone()[0]
    return list(incidents.values()), max_id + 1


def _restore_end(conn: sqlite3.Connection, incident: Incident) -> None:
    """The latest alert end of the current episode, from the timeline entries the correlator wrote for it
    (the same clamping: not before the episode began, not after the entry was recorded)."""
    rows = conn.execute(
        "SELECT at, kind, detail FROM timeline WHERE incident_id = ? AND id >= coalesce("
        "(SELECT max(id) FROM timeline WHERE incident_id = ? AND kind IN ('opened', 'reopened')), 0) "
        "AND kind IN ('opened', 'reopened', 'alert_resolved', 'alert_expired') ORDER BY id",
        (incident.id, incident.id),
    )
    began = incident.opened_at
    for at, kind, detail in rows:
        if kind in ("opened", "reopened"):
            began = at
            continue
        data = json.loads(detail)
        ended = data.get("ended_at")
        if not isinstance(ended, int | float):
            continue
        end = min(max(float(ended), began), at)
        if incident.ended_at is None or end >= incident.ended_at:
            source = data.get("end_source")
            incident.ended_at, incident.end_source = end, source if isinstance(source, str) else None


def recent_signatures(conn: sqlite3.Connection, since: float) -> list[tuple[str, float, int]]:
    """(signature, opened_at, id) of incidents opened since `since` and not part of any problem, oldest
    first: the recurrence history a new candidate problem is counted from."""
    return [
        (sig, opened, iid)
        for sig, opened, iid in conn.execute(
            "SELECT signature, opened_at, id FROM incidents WHERE opened_at >= ? AND signature != '' "
            "AND id NOT IN (SELECT incident_id FROM problem_incidents) ORDER BY opened_at, id",
            (since,),
        )
    ]


def incident_exists(conn: sqlite3.Connection, incident_id: int) -> bool:
    return conn.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone() is not None
