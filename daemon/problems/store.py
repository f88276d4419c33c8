"""Problem rows: statements the problem manager writes, the start-up loader, and the API's reads."""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.model import Problem, ProblemStatus
from daemon.storage.database import Statement
from daemon.storage.queries import rfc3339

UPSERT = Statement(
    "INSERT INTO problems (id, signature, service, title, status, opened_at, updated_at, resolved_at, root_cause, "
    "workaround, runbook) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
    "updated_at = excluded.updated_at, resolved_at = excluded.resolved_at, root_cause = excluded.root_cause, "
    "workaround = excluded.workaround, runbook = excluded.runbook, title = excluded.title",
    order=10,
)
LINK = Statement(
    "INSERT INTO problem_incidents (problem_id, incident_id, linked_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
    order=11,
)
_COLUMNS = "id, signature, service, title, status, opened_at, updated_at, resolved_at, root_cause, workaround, runbook"


def problem_row(p: Problem) -> tuple[Any, ...]:
    return (
        p.id,
        p.signature,
        p.service,
        p.title,
        p.status.value,
        p.opened_at,
        p.updated_at,
        p.resolved_at,
        p.root_cause,
        p.workaround,
        p.runbook,
    )


def _from_row(r: tuple[Any, ...]) -> Problem:
    return Problem(
        id=r[0],
        signature=r[1],
        service=r[2],
        title=r[3],
        status=ProblemStatus(r[4]),
        opened_at=r[5],
        updated_at=r[6],
        resolved_at=r[7],
        root_cause=r[8],
        workaround=r[9],
        runbook=r[10],
    )


def load_problems(conn: sqlite3.Connection) -> tuple[list[Problem], int]:
    """Problems not yet resolved, with their incidents; and the next free id."""
    problems = {
        r[0]: _from_row(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM problems WHERE status != ?",  # noqa: S608
            (ProblemStatus.RESOLVED.value,),
        )
    }
    for problem_id, incident_id in conn.execute(
        "SELECT problem_id, incident_id FROM problem_incidents ORDER BY linked_at, incident_id"
    ):
        if problem_id in problems:
            problems[problem_id].incidents.append(incident_id)
    max_id = conn.execute("SELECT coalesce(max(id), 0) FROM problems").fetchone()[0]
    return list(problems.values()), max_id + 1


def _json(r: tuple[Any, ...], incidents: list[int]) -> dict[str, Any]:
    return {
        "id": r[0],
        "signature": r[1],
        "service": r[2],
        "title": r[3],
        "status": r[4],
        "opened_at": rfc3339(r[5]),
        "updated_at": rfc3339(r[6]),
        "resolved_at": rfc3339(r[7]),
        "root_cause": r[8],
        "workaround": r[9],
        "runbook": r[10],
        "incident_count": len(incidents),
        "incidents": incidents,
    }


def read_problems(conn: sqlite3.Connection, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM problems {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
        [*args, limit, offset],
    ).fetchall()
    return [_json(r, _incidents_of(conn, r[0])) for r in rows]


def read_problem(conn: sqlite3.Connection, problem_id: int) -> dict[str, Any] | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM problems WHERE id = ?", (problem_id,)).fetchone()  # noqa: S608
    return _json(r, _incidents_of(conn, problem_id)) if r else None


def _incidents_of(conn: sqlite3.Connection, problem_id: int) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT incident_id FROM problem_incidents WHERE problem_id = ? ORDER BY linked_at, incident_id",
            (problem_id,),
        )
    ]


def problem_exists(conn: sqlite3.Connection, problem_id: int) -> bool:
    return conn.execute("SELECT 1 FROM problems WHERE id = ?", (problem_id,)).fetchone() is not None
