"""Incident search with label matchers: the same incidents, totals and counts as evaluating every matcher on
every alert of every incident, whatever the labels hold (the SQL narrowing only ever drops non-matches)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from daemon.clock import ManualClock
from daemon.correlate.matchers import match_all, parse_matcher
from daemon.storage.database import connect
from daemon.storage.incident_search import STATUSES, IncidentQuery, search_incidents
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


def expected(conn: sqlite3.Connection, texts: list[str], statuses: tuple[str, ...]) -> tuple[list[int], dict[str, int]]:
    matchers = tuple(parse_matcher(t) for t in texts)
    status_of = dict(conn.execute("SELECT id, status FROM incidents"))
    hits = {
        incident
        for incident, labels in conn.execute(
            "SELECT l.incident_id, a.labels FROM incident_alerts l JOIN alerts a ON a.fingerprint = l.fingerprint"
        )
        if match_all(matchers, json.loads(labels))
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
    conn = connect(tmp_path / "data" / "itsmd.db", read_only=True)
    try:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] >= 5
        for texts in MATCHERS:
            for statuses in (("open", "acknowledged"), ("acknowledged",), ()):
                query = IncidentQuery(statuses=statuses, matchers=tuple(parse_matcher(t) for t in texts), limit=100)
                found = search_incidents(conn, query)
                ids, counts = expected(conn, texts, statuses)
                assert [i["id"] for i in found.incidents] == ids, texts
                assert found.total == len(ids) and found.by_status == counts, texts
        assert expected(conn, ['alertname="Down"'], ())[0]  # the comparison is not of empty sets only
    finally:
        conn.close()
