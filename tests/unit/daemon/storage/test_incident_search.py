"""Incident search with label matchers: the same incidents, totals and counts as evaluating every matcher on
every alert of every incident, whatever the labels hold (the SQL narrowing only ever drops non-matches)."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.clock import ManualClock
from daemon.correlate.matchers import match_all, parse_matcher
from daemon.storage.database import Database
from daemon.storage.incident_search import STATUSES, IncidentQuery, search_incidents
from daemon.storage.sql import Sql
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
    sql = Database(tmp_path / "data" / "itsmd.db").reader()
    try:
        assert sql.scalar("SELECT count(*) FROM incidents") >= 5
        for texts in MATCHERS:
            for statuses in (("open", "acknowledged"), ("acknowledged",), ()):
                query = IncidentQuery(statuses=statuses, matchers=tuple(parse_matcher(t) for t in texts), limit=100)
                found = search_incidents(sql, query)
                ids, counts = expected(sql, texts, statuses)
                assert [i["id"] for i in found.incidents] == ids, texts
                assert found.total == len(ids) and found.by_status == counts, texts
        assert expected(sql, ['alertname="Down"'], ())[0]  # the comparison is not of empty sets only
    finally:
        sql.close()
