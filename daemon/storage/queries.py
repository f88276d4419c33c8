"""Reads for the API, on read-only connections in their own threads (WAL: readers never block the writer).

They see committed data only, which is what was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from daemon.model import Source
from daemon.storage.database import connect
from daemon.storage.sqlite_sql import SqliteSql

T = TypeVar("T")
Json = dict[str, Any]


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class _TransitionalSql(SqliteSql):
    """An Sql that still offers `execute`, for the record readers not yet moved to Sql (incidents, problems,
    search); goes when they read through Sql too."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn, owned=False)
        self.execute = conn.execute
        self.create_function = conn.create_function


class Reader:
    def __init__(self, path: Path, *, threads: int = 2) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="itsmd-reader")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, read_only=True)
            self._local.conn = conn
        return conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._conn(), *args))

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run fn(sql, *args) on a reader thread: for record modules with reads of their own."""
        return await self._run(lambda conn, *a: fn(_TransitionalSql(conn), *a), *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- incidents ------------------------------------------------------------------------------------

    async def incidents(
        self, status: str | None, limit: int, offset: int, assignment: AssignmentFilter = ANY
    ) -> list[Json]:
        result: list[Json] = await self._run(_incidents, status, limit, offset, assignment)
        return result

    async def incident(self, incident_id: int) -> Json | None:
        result: Json | None = await self._run(_incident, incident_id)
        return result

    # -- alerts ---------------------------------------------------------------------------------------

    async def alerts(self, status: str | None, limit: int, offset: int) -> list[Json]:
        result: list[Json] = await self._run(_alerts, status, limit, offset)
        return result

    async def alert(self, fingerprint: str) -> Json | None:
        result: Json | None = await self._run(_alert, fingerprint)
        return result


_INCIDENT_SELECT = (
    "SELECT i.id, i.key, i.status, i.service, i.title, i.opened_at, i.resolved_at, i.reopen_count, "
    "(SELECT count(DISTINCT fingerprint) FROM incident_alerts a WHERE a.incident_id = i.id), "
    "i.priority, i.rule, i.signature, i.acknowledged_at, i.closed_at, i.resolved_by, i.respond_by, i.resolve_by, "
    "i.sla, i.flapping, i.suspected_change, i.workaround, "
    "(SELECT p.problem_id FROM problem_incidents p WHERE p.incident_id = i.id ORDER BY p.problem_id DESC LIMIT 1), "
    "(SELECT json_array(t.at, t.detail) FROM timeline t WHERE t.incident_id = i.id AND t.kind = 'resolved' "
    "ORDER BY t.id DESC LIMIT 1), "
    "i.assignee, i.team, i.external "
    "FROM incidents i"
)


def _resolution(status: str, resolved_at: float | None, resolved_by: str | None, latest: str | None) -> Json | None:
    """How the incident ended, from its latest `resolved` timeline entry: when it ended, when that was
    recorded, and whether the end is estimated (an expiry) and from what."""
    if status not in ("resolved", "closed") or latest is None:
        return None
    recorded_at, detail = json.loads(latest)
    data = json.loads(detail)
    return {
        "ended_at": rfc3339(resolved_at),
        "recorded_at": rfc3339(recorded_at),
        "resolved_by": resolved_by,
        "end_estimated": bool(data.get("end_estimated", False)),
        "end_source": data.get("end_source"),
    }


def _incident_json(r: tuple[Any, ...]) -> Json:
    sla = json.loads(r[17])
    flapping = json.loads(r[18])
    paused_by_status = sla.get("since") is None and r[2] in ("open", "acknowledged")
    return {
        "id": r[0],
        "key": r[1],
        "status": r[2],
        "service": r[3],
        "title": r[4],
        "priority": r[9],
        "opened_at": rfc3339(r[5]),
        "acknowledged_at": rfc3339(r[12]),
        "resolved_at": rfc3339(r[6]),
        "closed_at": rfc3339(r[13]),
        "resolved_by": r[14],
        "assignee": r[23],
        "team": r[24],
        "reopen_count": r[7],
        "alert_count": r[8],
        "rule": r[10],
        "signature": r[11],
        "sla": {
            "respond_by": rfc3339(r[15]),
            "resolve_by": rfc3339(r[16]),
            "respond_target_seconds": sla.get("respond_target"),
            "resolve_target_seconds": sla.get("resolve_target"),
            "paused": paused_by_status,
            "paused_by": "status" if paused_by_status else None,
            "breaches": sorted(sla.get("breaches", [])),
        },
        "resolution": _resolution(r[2], r[6], r[14], r[22]),
        "flapping": bool(flapping),
        "flapping_alerts": flapping,
        "problem_id": r[21],
        "workaround": r[20],
        "suspected_change": r[19],
        "external": json.loads(r[25]) if r[25] else None,
    }


def _incidents(
    conn: sqlite3.Connection, status: str | None, limit: int, offset: int, assignment: AssignmentFilter
) -> list[Json]:
    statuses = status.split(",") if status else []
    clauses, args = assignment.where()
    if statuses:
        clauses.insert(0, f"i.status IN ({','.join('?' * len(statuses))})")
        args[:0] = statuses
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"{_INCIDENT_SELECT} {where} ORDER BY i.id DESC LIMIT ? OFFSET ?", [*args, limit, offset])
    return [_incident_json(r) for r in rows]


def _incident(conn: sqlite3.Connection, incident_id: int) -> Json | None:
    r = conn.execute(f"{_INCIDENT_SELECT} WHERE i.id = ?", (incident_id,)).fetchone()
    if r is None:
        return None
    out = _incident_json(r)
    out["alerts"] = [
        {
            "fingerprint": fp,
            "labels": json.loads(labels),
            "annotations": json.loads(annotations),
            "status": _episode_status(ended, status_now, starts, starts_now),
            "starts_at": rfc3339(starts),
            "ends_at": rfc3339(ended),
            "attached_at": rfc3339(attached),
        }
        for fp, starts, attached, ended, labels, annotations, status_now, starts_now in conn.execute(
            "SELECT l.fingerprint, l.starts_at, l.attached_at, l.ended_at, a.labels, a.annotations, a.status, "
            "a.starts_at "
            "FROM incident_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint "
            "WHERE l.incident_id = ? ORDER BY l.attached_at, l.fingerprint",
            (incident_id,),
        )
    ]
    out["timeline"] = [
        {"at": rfc3339(at), "kind": kind, "detail": json.loads(detail)}
        for at, kind, detail in conn.execute(
            "SELECT at, kind, detail FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
    ]
    return out


def _episode_status(ended: float | None, status_now: str, starts: float, starts_now: float) -> str:
    """An incident lists alert episodes; only the alert's latest episode can be the expired one."""
    if ended is None:
        return "firing"
    return "expired" if status_now == "expired" and starts == starts_now else "resolved"


_ALERT_SELECT = (
    "SELECT fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
    "first_seen, last_seen, times_seen, state_changes, incident_id FROM alerts"
)


def _alert_json(r: tuple[Any, ...]) -> Json:
    return {
        "fingerprint": r[0],
        "labels": json.loads(r[1]),
        "annotations": json.loads(r[2]),
        "status": r[3],
        "starts_at": rfc3339(r[4]),
        "ends_at": rfc3339(r[5]),
        "generator_url": r[6],
        "sources": Source(r[7]).names,
        "first_seen": rfc3339(r[8]),
        "last_seen": rfc3339(r[9]),
        "times_seen": r[10],
        "state_changes": r[11],
        "incident_id": r[12],
    }


def _alerts(conn: sqlite3.Connection, status: str | None, limit: int, offset: int) -> list[Json]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    rows = conn.execute(
        f"{_ALERT_SELECT} {where} ORDER BY starts_at DESC, fingerprint LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return [_alert_json(r) for r in rows]


def _alert(conn: sqlite3.Connection, fingerprint: str) -> Json | None:
    r = conn.execute(f"{_ALERT_SELECT} WHERE fingerprint = ?", (fingerprint,)).fetchone()
    return _alert_json(r) if r else None
