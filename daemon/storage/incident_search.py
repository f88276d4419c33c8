"""Incident search for the console: filters, sorting, a page, counts per status and the assignees, in one read.

Runs on a reader connection (committed state). Free text matches titles (case-insensitive substring, `%` and
`_` are literal); label matchers (Alertmanager syntax) match an incident when one of its alerts matches them
all, evaluated in Python, so regexes are Python's anchored ones, the same as everywhere else in itsmd (and the
same in both dialects: neither database runs them).

Matchers are evaluated once per search, over the alerts table, into the set of incidents that have a matching
alert; the page, the total and the counts then filter on that set in SQL, so pagination stays the database's.
Evaluating them inside each of those three queries, per incident and alert link, took seconds with 100k alerts
(bench/console.py). Before Python sees an alert, SQL drops those whose stored labels lack the exact text of an
equality matcher's pair (labels are stored as canonical JSON, `storage.alerts`): only a narrowing, Python still
decides.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from daemon.correlate.matchers import Matcher, match_all
from daemon.storage.incidents import ANY, INCIDENT_SELECT, AssignmentFilter, incident_json
from daemon.storage.sql import Dialect, Sql

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


@functools.lru_cache(maxsize=4096)
def _labels(labels_json: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(labels_json)
    return labels


def _in_array(sql: Sql, column: str, values: Collection[Any]) -> tuple[str, Any]:
    """`column` is one of `values`, as one array parameter (any number of them)."""
    if sql.dialect is Dialect.POSTGRES:
        return f"{column} = ANY(?)", list(values)
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def _where(sql: Sql, q: IncidentQuery, matched: set[int] | None, *, with_status: bool) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if with_status and q.statuses:
        clauses.append(f"i.status IN ({','.join('?' * len(q.statuses))})")
        args.extend(q.statuses)
    if q.services is not None:
        if not q.services:
            clauses.append("1 = 0")
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
        # SQLite's LIKE ignores ASCII case; PostgreSQL's does not.
        like = "ILIKE" if sql.dialect is Dialect.POSTGRES else "LIKE"
        clauses.append(f"i.title {like} ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    if matched is not None:
        clause, arg = _in_array(sql, "i.id", sorted(matched))
        clauses.append(clause)
        args.append(arg)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _pair_text(m: Matcher) -> str | None:
    """The text a stored label set must contain for `m` to match it, when there is one: a `name="value"` pair
    as the canonical JSON of storage.alerts writes it (compact separators, ASCII escapes)."""
    if m.op != "=" or not m.value:
        return None  # an empty value also matches a missing label
    return f"{json.dumps(m.name)}:{json.dumps(m.value)}"


def _matching_incidents(sql: Sql, matchers: tuple[Matcher, ...]) -> set[int]:
    """Ids of the incidents with an alert that matches every matcher."""
    texts = [text for text in map(_pair_text, matchers) if text is not None]
    decided: dict[str, bool] = {}

    def matches(labels: str) -> bool:
        hit = decided.get(labels)
        if hit is None:
            hit = decided[labels] = match_all(matchers, _labels(labels))
        return hit

    if not texts:
        # Nothing to narrow by: every link's alert, skipping the alerts of incidents already matched (most of
        # an incident's alerts, so most of the matching work).
        found: set[int] = set()
        for r in sql.rows(
            "SELECT l.incident_id, a.labels FROM incident_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint"
        ):
            if r["incident_id"] not in found and matches(r["labels"]):
                found.add(r["incident_id"])
        return found
    # Narrowed: the few candidate alerts first, then their incidents.
    contains = "strpos(a.labels, ?) > 0" if sql.dialect is Dialect.POSTGRES else "instr(a.labels, ?) > 0"
    narrow = " AND ".join(contains for _ in texts)
    candidates = sql.rows(f"SELECT a.fingerprint, a.labels FROM alerts a WHERE {narrow}", texts)
    fingerprints = [r["fingerprint"] for r in candidates if matches(r["labels"])]
    if not fingerprints:
        return set()
    clause, arg = _in_array(sql, "l.fingerprint", fingerprints)
    linked = sql.rows(f"SELECT DISTINCT l.incident_id FROM incident_alerts l WHERE {clause}", [arg])
    return {r["incident_id"] for r in linked}


def search_incidents(sql: Sql, q: IncidentQuery) -> IncidentPage:
    matched = _matching_incidents(sql, q.matchers) if q.matchers else None
    where, args = _where(sql, q, matched, with_status=True)
    order = SORTS.get(q.sort, SORTS["newest"])
    found = sql.rows(f"{INCIDENT_SELECT} {where} ORDER BY {order} LIMIT ? OFFSET ?", [*args, q.limit, q.offset])
    incidents = [incident_json(r) for r in found]
    total = int(sql.scalar(f"SELECT count(*) FROM incidents i {where}", args))
    where_any, args_any = _where(sql, q, matched, with_status=False)
    by_status = dict.fromkeys(STATUSES, 0)
    for r in sql.rows(f"SELECT i.status, count(*) AS n FROM incidents i {where_any} GROUP BY i.status", args_any):
        by_status[r["status"]] = int(r["n"])
    assignees = [
        r["assignee"]
        for r in sql.rows(
            "SELECT DISTINCT assignee FROM incidents WHERE assignee IS NOT NULL ORDER BY assignee LIMIT ?",
            (MAX_ASSIGNEES,),
        )
    ]
    return IncidentPage(incidents, total, by_status, assignees)
