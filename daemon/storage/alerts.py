"""Alert rows: the row an alert is written as, loading alerts back (the active ones at start, any by
fingerprint later), and the API's alert reads.

The writes themselves are the backend's (alert rows and touches go in as whole arrays per commit); this module
owns the column order both sides agree on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from daemon.model import Alert, AlertStatus, Source
from daemon.storage.sql import Dialect, Row, Sql, row_json, row_value
from daemon.storage.timestamps import rfc3339

AlertRow = tuple[Any, ...]
Json = dict[str, Any]

ALERT_COLUMNS = (
    "fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
    "first_seen, last_seen, times_seen, state_changes, expires_at, incident_id"
)
"""The column order of alert_row, which the backends' writes rely on."""


def alert_row(a: Alert) -> AlertRow:
    """In the order of ALERT_COLUMNS. Labels are canonical JSON (sorted keys, compact): incident search narrows
    on their exact text."""
    return (
        a.fingerprint,
        row_json(a.labels),
        row_json(a.annotations),
        a.status.value,
        a.starts_at,
        a.ends_at,
        a.generator_url,
        int(a.sources),
        a.first_seen,
        a.last_seen,
        a.times_seen,
        a.state_changes,
        a.expires_at,
        a.incident_id,
    )


def alert_touch_row(a: Alert) -> tuple[Any, ...]:
    """The columns a re-send changes; much cheaper than a whole row (no JSON): last_seen, times_seen, sources,
    expires_at, then the fingerprint it applies to."""
    return (a.last_seen, a.times_seen, int(a.sources), a.expires_at, a.fingerprint)


_STATUSES = {s.value: s for s in AlertStatus}
_SOURCES = {
    int(s): s for s in (Source(0), Source.ALERTMANAGER, Source.PROMETHEUS, Source.ALERTMANAGER | Source.PROMETHEUS)
}
"""The enums by stored value: a dict lookup, where calling the enum costs ~1.4 us a value (two per alert at
start-up)."""


def alert_from_row(r: Row) -> Alert:
    sources = r["sources"]
    return Alert(
        fingerprint=r["fingerprint"],
        labels=row_value(r["labels"]),
        annotations=row_value(r["annotations"]),
        status=_STATUSES.get(r["status"]) or AlertStatus(r["status"]),
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        generator_url=r["generator_url"],
        sources=_SOURCES[sources] if sources in _SOURCES else Source(sources),
        first_seen=r["first_seen"],
        last_seen=r["last_seen"],
        times_seen=r["times_seen"],
        state_changes=r["state_changes"],
        expires_at=r["expires_at"],
        incident_id=r["incident_id"],
    )


ACTIVE_PAGE = 2_000
"""Rows of the active set decoded at a time at start-up: reading all 100k at once left RSS at 426 MiB after
a start against 240 MiB for the same alerts taken in live (the rows' dicts and JSON texts, freed after the
alerts were built, stayed in the allocator's arenas)."""


def active_alert_pages(sql: Sql, *, now: float, retention: float, size: int = ACTIVE_PAGE) -> Iterator[list[Alert]]:
    """The alerts a starting daemon holds in memory, `size` at a time: firing, or ended within `retention`.
    Alerts resolved long ago stay on disk only (load_alerts reads one back when it returns).

    Three reads on the (status, ends_at) index, not one `status = ? OR coalesce(ends_at, last_seen) > ?`, which
    no index serves: that scanned every stored alert, so start-up grew with the history kept (2.7 s of a
    start with 2.3M stored alerts, bench/startup.py)."""
    cutoff = now - retention
    ended = (AlertStatus.RESOLVED.value, AlertStatus.EXPIRED.value)
    select = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE "
    reads: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("status = ?", (AlertStatus.FIRING.value,)),
        ("status IN (?, ?) AND ends_at > ?", (*ended, cutoff)),
        # An ended alert without an end time is not written today; by its last sight, as before.
        ("status IN (?, ?) AND ends_at IS NULL AND last_seen > ?", (*ended, cutoff)),
    )
    for where, params in reads:
        for rows in sql.pages(select + where, params, size=size):
            yield [alert_from_row(r) for r in rows]


def load_active_alerts(sql: Sql, *, now: float, retention: float) -> list[Alert]:
    """active_alert_pages, all at once (for tools and tests; the daemon takes them a page at a time)."""
    return [a for page in active_alert_pages(sql, now=now, retention=retention) for a in page]


def load_alerts(sql: Sql, fingerprints: Sequence[str]) -> dict[str, Alert]:
    """The stored alerts among these fingerprints, in one statement on the primary key (any number of them:
    one array parameter, not one placeholder each)."""
    if sql.dialect is Dialect.POSTGRES:
        found = sql.rows(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ANY(?)", (list(fingerprints),))
    else:
        found = sql.rows(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint IN (SELECT value FROM json_each(?))",
            (json.dumps(list(fingerprints)),),
        )
    return {r["fingerprint"]: alert_from_row(r) for r in found}


def count_alerts(sql: Sql) -> int:
    return int(sql.scalar("SELECT count(*) FROM alerts") or 0)


def stored_fingerprints(sql: Sql, page: int) -> Iterator[list[str]]:
    """Every stored alert's fingerprint, a page at a time in key order (each page one indexed read, so a long
    scan holds neither a transaction nor every fingerprint at once)."""
    after = ""
    while True:
        rows = sql.rows(
            "SELECT fingerprint FROM alerts WHERE fingerprint > ? ORDER BY fingerprint LIMIT ?", (after, page)
        )
        if not rows:
            return
        found = [r["fingerprint"] for r in rows]
        yield found
        after = found[-1]


def load_alert(sql: Sql, fingerprint: str) -> Alert | None:
    return load_alerts(sql, [fingerprint]).get(fingerprint)


# -- the API's reads ----------------------------------------------------------------------------------

_ALERT_SELECT = (
    "SELECT fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
    "first_seen, last_seen, times_seen, state_changes, incident_id FROM alerts"
)


def alert_json(r: Row) -> Json:
    return {
        "fingerprint": r["fingerprint"],
        "labels": json.loads(r["labels"]),
        "annotations": json.loads(r["annotations"]),
        "status": r["status"],
        "starts_at": rfc3339(r["starts_at"]),
        "ends_at": rfc3339(r["ends_at"]),
        "generator_url": r["generator_url"],
        "sources": Source(r["sources"]).names,
        "first_seen": rfc3339(r["first_seen"]),
        "last_seen": rfc3339(r["last_seen"]),
        "times_seen": r["times_seen"],
        "state_changes": r["state_changes"],
        "incident_id": r["incident_id"],
    }


def read_alerts(sql: Sql, status: str | None, limit: int, offset: int) -> list[Json]:
    where, args = ("WHERE status = ?", [status]) if status else ("", [])
    found = sql.rows(
        f"{_ALERT_SELECT} {where} ORDER BY starts_at DESC, fingerprint LIMIT ? OFFSET ?", [*args, limit, offset]
    )
    return [alert_json(r) for r in found]


def read_alert(sql: Sql, fingerprint: str) -> Json | None:
    r = sql.one(f"{_ALERT_SELECT} WHERE fingerprint = ?", (fingerprint,))
    return alert_json(r) if r else None
