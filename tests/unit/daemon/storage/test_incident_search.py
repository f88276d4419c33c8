"""Incident search with label matchers: the same incidents, totals and counts as evaluating every matcher on
every alert of every incident, whatever the labels hold (the SQL narrowing only ever drops non-matches)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.clock import ManualClock
from daemon.correlate.matchers import match_all, parse_matcher
from daemon.model import Alert, AlertStatus, Incident, IncidentStatus, Source
from daemon.storage.alerts import alert_row
from daemon.storage.database import Batch
from daemon.storage.incident_search import STATUSES, IncidentQuery, search_incidents
from daemon.storage.incidents import INCIDENT, LINK, incident_row
from daemon.storage.sql import Backend, Sql
from tests.postgres import stored
from tests.unit.daemon.ingest.conftest import running, write_config

TRICKY = [
    {"alertname": "Down", "service": "api", "instance": "web-1"},
    {"alertname": "Down", "service": "api", "instance": "café ☕"},
    {"alertname": "Down", "service": "db", "instance": 'q"uo\\te'},
    {"alertname": "Slow", "service": "db", "instance": "web-1", "note": '"alertname":"Down"'},
    {"alertname": "Slow", "service": "api", "instance": "", "team": "web"},
    {"alertname": "Down", "service": "checkout", "instance": "web-10", "team": ""},
    {"alertname": "Full", "service": "db", "instance": "web-1\n2"},
]
T0 = 1_800_000_000.0
MATCHERS = [
    ['alertname="Down"'],
    ['alertname="Down"', 'instance="web-1"'],
    ['instance="café ☕"'],
    ['instance="q\\"uo\\\\te"'],
    ['team=""'],
    ['team!=""'],
    ['instance=~"web-1.*"'],
    ['instance!~"web-.*"', 'alertname="Down"'],
    ['alertname="Nope"'],
    ['note="\\"alertname\\":\\"Down\\""'],
    ['instance="web-1\\n2"'],
]


def expected(sql: Sql, texts: list[str], statuses: tuple[str, ...]) -> tuple[list[int], dict[str, int]]:
    matchers = tuple(parse_matcher(t) for t in texts)
    status_of = {r["id"]: r["status"] for r in sql.rows("SELECT id, status FROM incidents")}
    hits = {
        r["incident_id"]
        for r in sql.rows(
            "SELECT l.incident_id, a.labels FROM incident_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint"
        )
        if match_all(matchers, json.loads(r["labels"]))
    }
    counts = dict.fromkeys(STATUSES, 0)
    for incident in hits:
        counts[status_of[incident]] += 1
    return sorted((i for i in hits if not statuses or status_of[i] in statuses), reverse=True), counts


async def test_matcher_search_finds_what_evaluating_every_alert_finds(tmp_path: Path) -> None:
    async with running(write_config(tmp_path / "etc"), tmp_path / "data", ManualClock()) as d:
        for labels in TRICKY:
            body = [{"labels": {"severity": "critical", **labels}, "annotations": {}}]
            assert (await d.v2(body))[0] == 200
        status, _ = await d.post("/api/v1/incidents/2/acknowledge", {"by": "test"})
        assert status == 200
    with stored(tmp_path / "data") as sql:
        assert sql.scalar("SELECT count(*) FROM incidents") >= 5
        for texts in MATCHERS:
            for statuses in (("open", "acknowledged"), ("acknowledged",), ()):
                query = IncidentQuery(statuses=statuses, matchers=tuple(parse_matcher(t) for t in texts), limit=100)
                found = search_incidents(sql, query)
                ids, counts = expected(sql, texts, statuses)
                assert [i["id"] for i in found.incidents] == ids, texts
                assert found.total == len(ids) and found.by_status == counts, texts
        assert expected(sql, ['alertname="Down"'], ())[0]  # the comparison is not of empty sets only


def _stored(backend: Backend) -> None:
    """Incidents 1..30: alerts of instance web-<n>; every third one acknowledged; titles with LIKE's wildcards."""
    batch = Batch()
    for n in range(1, 31):
        status = IncidentStatus.ACKNOWLEDGED if n % 3 == 0 else IncidentStatus.OPEN
        title = {1: "Disk 100% full", 2: "disk 100 full", 3: "a_b down", 4: "axb down"}.get(n, f"Down {n}")
        incident = Incident(n, f"k{n}", "db" if n > 25 else "api", title, status, T0 + n)
        batch.upsert(INCIDENT, n, incident_row(incident))
        labels = {"alertname": "Down", "instance": f"web-{n}", "parity": "even" if n % 2 == 0 else "odd"}
        alert = Alert(f"fp{n}", labels, {}, AlertStatus.FIRING, T0, None, "", Source.ALERTMANAGER, T0, T0)
        batch.alerts[alert.fingerprint] = alert_row(alert)
        batch.upsert(LINK, (n, alert.fingerprint, T0), (n, alert.fingerprint, T0, T0 + n, None))
    backend.write(batch)


def test_matchers_page_and_count_in_every_backend(sql_backend: Backend) -> None:
    _stored(sql_backend)
    sql = sql_backend.reader()
    try:
        even = (parse_matcher('parity="even"'),)
        query = IncidentQuery(statuses=(), matchers=even, limit=4, offset=2)
        page = search_incidents(sql, query)
        assert [i["id"] for i in page.incidents] == [26, 24, 22, 20]
        assert page.total == 15
        assert page.by_status == {"open": 10, "acknowledged": 5, "resolved": 0, "closed": 0}
        regex = (parse_matcher('instance=~"web-1."'), parse_matcher('parity!="odd"'))
        found = search_incidents(sql, IncidentQuery(matchers=regex, limit=100))
        assert [i["id"] for i in found.incidents] == [18, 16, 14, 12, 10]  # anchored: web-1 alone does not match
        nothing = search_incidents(sql, IncidentQuery(matchers=(parse_matcher('parity="none"'),)))
        assert (nothing.incidents, nothing.total, sum(nothing.by_status.values())) == ([], 0, 0)
    finally:
        sql.close()


def test_text_is_a_case_insensitive_substring_with_literal_wildcards(sql_backend: Backend) -> None:
    _stored(sql_backend)
    sql = sql_backend.reader()
    try:

        def ids(**q: Any) -> list[int]:
            return [i["id"] for i in search_incidents(sql, IncidentQuery(statuses=(), **q)).incidents]

        assert ids(text="DISK 100") == [2, 1]
        assert ids(text="100%") == [1]
        assert ids(text="a_b") == [3]
        assert ids(text="down", services=("db",), sort="oldest") == [26, 27, 28, 29, 30]
        assert ids(services=()) == []
    finally:
        sql.close()
