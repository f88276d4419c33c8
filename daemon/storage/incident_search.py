"""Incident search for the console: filters, sorting, a page, counts per status and the assignees, in one read.

Runs on a reader connection (committed state). Free text matches titles (case-insensitive substring, `%` and
`_` are literal); label matchers (Alertmanager syntax) match an incident when one of its alerts matches them
all, evaluated by a Python function registered on the connection, so regexes are Python's anchored ones, the
same as everywhere else in itsmd.

Matchers are evaluated once per search, over the alerts table, into the set of incidents that have a matching
alert; the page, the total and the counts then filter on that set. Evaluating them inside each of those three
queries, per incident and alert link, took seconds with 100k alerts (bench/console.py). Before the Python function
sees an alert, SQL drops those whose stored labels lack the exact text of an equality matcher's pair (labels are
stored as canonical JSON, `storage.rows`): only a narrowing, the function still decides.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from daemon.correlate.matchers import Matcher, match_all, parse_matcher
from daemon.storage.queries import _INCIDENT_SELECT, ANY, AssignmentFilter, _incident_json

Json = dict[str, Any]
SORTS = {
    "newest": "i.id DESC",
    "oldest": "i.id ASC",
    "priority": "i.priority ASC, i.id DESC",
    "service": "i.service ASC, i.id DESC",
}
STATUSES = ("open", "acknowledged", "resolved", "closed")
MAX_ASSIGNEES = 200
"""Names offered in the assignee filter (the people most lists show are far fewer)."""


@dataclass(frozen=True)
class IncidentQuery:
    statuses: tuple[str, ...] = ("open", "acknowledged")
    services: tuple[str, ...] | None = None
    """None: any service; () matches nothing."""
    assignment: AssignmentFilter = ANY
    """Assignee and team."""
    priorities: tuple[str, ...] = ()
    flapping: bool | None = None
    text: str = ""
    matchers: tuple[Matcher, ...] = ()
    sort: str = "newest"
    limit: int = 50
    offset: int = 0


@dataclass
class IncidentPage:
    incidents: list[Json]
    total: int
    """Incidents matching every filter (all pages)."""
    by_status: dict[str, int] = field(default_factory=dict)
    """Counts per status under every filter but the status one."""
    assignees: list[str] = field(default_factory=list)
    """Everyone any incident is assigned to, for the assignee filter."""


@functools.lru_cache(maxsize=64)
def _parsed(matchers_json: str) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(text) for text in json.loads(matchers_json))


@functools.lru_cache(maxsize=4096)
def _labels(labels_json: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(labels_json)
    return labels


def _label_matches(labels_json: str, matchers_json: str) -> int:
    return int(match_all(_parsed(matchers_json), _labels(labels_json)))


def _where(q: IncidentQuery, matched: str | None, *, with_status: bool) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if with_status and q.statuses:
        clauses.append(f"i.status IN ({','.join('?' * len(q.statuses))})")
        args.extend(q.statuses)
    if q.services is not None:
        if not q.services:
            clauses.append("0")
        else:
            clauses.append(f"i.service IN ({','.join('?' * len(q.services))})")
            args.extend(q.services)
    assigned, assigned_args = q.assignment.where()
    clauses.extend(assigned)
    args.extend(assigned_args)
    if q.priorities:
        clauses.append(f"i.priority IN ({','.join('?' * len(q.priorities))})")
        args.extend(q.priorities)
    if q.flapping is not None:
        clauses.append("i.flapping != '[]'" if q.flapping else "i.flapping = '[]'")
    if q.text:
        escaped = q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("i.title LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    if matched is not None:
        clauses.append("i.id IN (SELECT value FROM json_each(?))")
        args.append(matched)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _pair_text(m: Matcher) -> str | None:
    """The text a stored label set must contain for `m` to match it, when there is one: a `name="value"` pair
    as the canonical JSON of storage.rows writes it (compact separators, ASCII escapes)."""
    if m.op != "=" or not m.value:
        return None  # an empty value also matches a missing label
    return f"{json.dumps(m.name)}:{json.dumps(m.value)}"


def _matching_incidents(conn: sqlite3.Connection, matchers: tuple[Matcher, ...]) -> str:
    """Ids (a JSON array) of the incidents with an alert that matches every matcher."""
    texts = [text for text in map(_pair_text, matchers) if text is not None]
    narrow = "".join(" AND instr(a.labels, ?) > 0" for _ in texts)
    rows = conn.execute(
        "SELECT DISTINCT l.incident_id FROM incident_alerts l WHERE l.fingerprint IN "
        f"(SELECT a.fingerprint FROM alerts a WHERE 1{narrow} AND itsmd_label_matches(a.labels, ?))",
        [*texts, json.dumps([str(m) for m in matchers])],
    )
    return json.dumps([r[0] for r in rows])


def search_incidents(conn: sqlite3.Connection, q: IncidentQuery) -> IncidentPage:
    conn.create_function("itsmd_label_matches", 2, _label_matches, deterministic=True)
    matched = _matching_incidents(conn, q.matchers) if q.matchers else None
    where, args = _where(q, matched, with_status=True)
    order = SORTS.get(q.sort, SORTS["newest"])
    rows = conn.execute(f"{_INCIDENT_SELECT} {where} ORDER BY {order} LIMIT ? OFFSET ?", [*args, q.limit, q.offset])
    incidents = [_incident_json(r) for r in rows]
    total = conn.execute(f"SELECT count(*) FROM incidents i {where}", args).fetchone()[0]
    where_any, args_any = _where(q, matched, with_status=False)
    by_status = dict.fromkeys(STATUSES, 0)
    counted = conn.execute(f"SELECT i.status, count(*) FROM incidents i {where_any} GROUP BY i.status", args_any)
    for status, count in counted:
        by_status[status] = count
    assignees = [
        name
        for (name,) in conn.execute(
            "SELECT DISTINCT assignee FROM incidents WHERE assignee IS NOT NULL ORDER BY assignee LIMIT ?",
            (MAX_ASSIGNEES,),
        )
    ]
    return IncidentPage(incidents, total, by_status, assignees)
