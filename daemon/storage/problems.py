"""Problem rows: statements the problem manager writes, the start-up loader, and the API's and console's
reads."""

from __future__ import annotations

from typing import Any

from daemon.model import Problem, ProblemStatus
from daemon.storage.database import Statement
from daemon.storage.sql import Row, Sql
from daemon.storage.timestamps import rfc3339

UPSERT = Statement(
    "INSERT INTO problems (id, signature, service, title, status, opened_at, updated_at, resolved_at, root_cause, "
    "workaround, runbook) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
    "updated_at = excluded.updated_at, resolved_at = excluded.resolved_at, root_cause = excluded.root_cause, "
    "workaround = excluded.workaround, runbook = excluded.runbook, title = excluded.title",
    order=10,
)
LINK = Statement(
    "INSERT INTO problem_incidents (problem_id, incident_id, linked_at) VALUES (?,?,?) "
    "ON CONFLICT (problem_id, incident_id) DO NOTHING",
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


def _from_row(r: Row) -> Problem:
    return Problem(
        id=r["id"],
        signature=r["signature"],
        service=r["service"],
        title=r["title"],
        status=ProblemStatus(r["status"]),
        opened_at=r["opened_at"],
        updated_at=r["updated_at"],
        resolved_at=r["resolved_at"],
        root_cause=r["root_cause"],
        workaround=r["workaround"],
        runbook=r["runbook"],
    )


def load_problems(sql: Sql) -> tuple[list[Problem], int]:
    """Problems not yet resolved, with their incidents; and the next free id."""
    problems = {
        r["id"]: _from_row(r)
        for r in sql.rows(f"SELECT {_COLUMNS} FROM problems WHERE status != ?", (ProblemStatus.RESOLVED.value,))
    }
    for link in sql.rows("SELECT problem_id, incident_id FROM problem_incidents ORDER BY linked_at, incident_id"):
        if link["problem_id"] in problems:
            problems[link["problem_id"]].incidents.append(link["incident_id"])
    max_id = sql.scalar("SELECT coalesce(max(id), 0) FROM problems")
    return list(problems.values()), int(max_id) + 1


def _json(r: Row, incidents: list[int]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "signature": r["signature"],
        "service": r["service"],
        "title": r["title"],
        "status": r["status"],
        "opened_at": rfc3339(r["opened_at"]),
        "updated_at": rfc3339(r["updated_at"]),
        "resolved_at": rfc3339(r["resolved_at"]),
        "root_cause": r["root_cause"],
        "workaround": r["workaround"],
        "runbook": r["runbook"],
        "incident_count": len(incidents),
        "incidents": incidents,
    }


def read_problems(sql: Sql, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    found = sql.rows(
        f"SELECT {_COLUMNS} FROM problems {where} ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset]
    )
    return [_json(r, _incidents_of(sql, r["id"])) for r in found]


def read_problem(sql: Sql, problem_id: int) -> dict[str, Any] | None:
    r = sql.one(f"SELECT {_COLUMNS} FROM problems WHERE id = ?", (problem_id,))
    return _json(r, _incidents_of(sql, problem_id)) if r else None


def _incidents_of(sql: Sql, problem_id: int) -> list[int]:
    return [
        r["incident_id"]
        for r in sql.rows(
            "SELECT incident_id FROM problem_incidents WHERE problem_id = ? ORDER BY linked_at, incident_id",
            (problem_id,),
        )
    ]


def problem_exists(sql: Sql, problem_id: int) -> bool:
    return sql.one("SELECT 1 AS found FROM problems WHERE id = ?", (problem_id,)) is not None


def status_counts(sql: Sql) -> dict[str, int]:
    """Problems per status, every status present (0 when none)."""
    found = {r["status"]: int(r["n"]) for r in sql.rows("SELECT status, count(*) AS n FROM problems GROUP BY status")}
    return {s.value: found.get(s.value, 0) for s in ProblemStatus}
