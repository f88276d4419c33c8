"""Housekeeping on a real store and a running writer: what is pruned, what is kept, and in what batches.

Rows are put in with this test's own SQL (as an older daemon would have left them), then one run of the job;
the expectations are written out per row.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.catalogue.services import Catalogue, Service
from daemon.clock import ManualClock
from daemon.errors import NotFound
from daemon.housekeeping.config import DAY, RetentionConfig
from daemon.housekeeping.job import Housekeeping
from daemon.report import period as periods
from daemon.report.build import build_report
from daemon.report.produce import report_text
from daemon.storage.database import Database
from daemon.storage.schema import APPLICATION_ID, LATEST, MIGRATIONS
from daemon.storage.writer import GroupCommitWriter

NOW = 1_900_000_000.0
OLD = NOW - 40 * DAY
"""Past the 30-day alert retention; well inside the three years of the records."""
ANCIENT = NOW - 4 * 365 * DAY


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path / "itsmd.db"
        self.db = Database(self.path)
        self.db.open()
        self.writer = GroupCommitWriter(self.db, flush_interval=0.05)
        self.clock = ManualClock(NOW)

    def job(self, **retention: object) -> Housekeeping:
        catalogue = Catalogue(services=(Service(name="api"),))
        return Housekeeping(
            self.db,
            self.writer,
            self.clock,
            RetentionConfig.model_validate(retention),
            catalogue=lambda: catalogue,
            windows=(DAY, 30 * DAY),
            months_per_run=100,
        )

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return conn.execute(statement, params).fetchall()
        finally:
            conn.close()

    def alert(self, fingerprint: str, status: str, ended: float) -> None:
        self.sql(
            "INSERT INTO alerts (fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
            "first_seen, last_seen, times_seen, state_changes, expires_at, incident_id) "
            "VALUES (?, '{}', '{}', ?, ?, ?, '', 1, ?, ?, 1, 1, NULL, NULL)",
            (fingerprint, status, ended - 60, ended if status != "firing" else None, ended - 60, ended),
        )

    def incident(self, incident_id: int, status: str, resolved: float | None, *fingerprints: str) -> None:
        opened = (resolved or NOW) - 600
        self.sql(
            "INSERT INTO incidents (id, key, service, title, status, opened_at, resolved_at, reopen_count) "
            "VALUES (?, 'k', 'api', 't', ?, ?, ?, 0)",
            (incident_id, status, opened, resolved),
        )
        detail = json.dumps({"priority": "P1", "alert": fingerprints[0] if fingerprints else None})
        self.sql(
            "INSERT INTO timeline (incident_id, at, kind, detail) VALUES (?, ?, 'opened', ?)",
            (incident_id, opened, detail),
        )
        if resolved is not None:
            self.sql(
                "INSERT INTO timeline (incident_id, at, kind, detail) VALUES (?, ?, 'resolved', '{}')",
                (incident_id, resolved),
            )
        for fp in fingerprints:
            self.sql(
                "INSERT INTO incident_alerts (incident_id, fingerprint, starts_at, attached_at) VALUES (?, ?, ?, ?)",
                (incident_id, fp, opened, opened),
            )

    def run(self, run_id: int, status: str, ended: float) -> None:
        self.sql(
            "INSERT INTO runs (id, runbook, version, mode, status, params, trigger, requested_by, emergency, "
            "created_at, ended_at, reason) VALUES (?, 'rb', '1', 'live', ?, '{}', 'manual', 'alice', 0, ?, ?, '')",
            (run_id, status, ended - 60, ended),
        )
        self.sql(
            "INSERT INTO run_steps (run_id, idx, step_index, name, phase, status, attempts, started_at, summary, "
            "output_digest, output, plan, data) VALUES (?, 0, 0, 's', 'main', 'succeeded', 1, ?, '', '', '', '', '')",
            (run_id, ended - 60),
        )

    def outbox(self, event_id: str, state: str, updated: float) -> None:
        self.sql(
            "INSERT INTO outbox (event_id, receiver, seq, kind, incident_id, created_at, body, state, attempts, "
            "next_attempt, last_error, updated_at) VALUES (?, 'r', 1, 'k', NULL, ?, '{}', ?, 1, 0, '', ?)",
            (event_id, updated, state, updated),
        )

    def ids(self, table: str, column: str = "id") -> set[object]:
        return {r[0] for r in self.sql(f"SELECT {column} FROM {table}")}  # noqa: S608 (this test's names)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path)
    task = asyncio.create_task(s.writer.run())
    try:
        yield s
    finally:
        s.writer.close()
        await task
        s.writer.shutdown_thread()
        s.db.close()


async def test_prunes_by_policy_and_keeps_what_is_still_needed(store: Store) -> None:
    store.alert("gone", "resolved", OLD)
    store.alert("expired-gone", "expired", OLD)
    store.alert("recent", "resolved", NOW - DAY)
    store.alert("firing", "firing", OLD)
    store.alert("of-open", "resolved", OLD)
    store.alert("of-reopenable", "resolved", OLD)
    store.alert("of-closed", "resolved", OLD)
    store.incident(1, "open", None, "of-open")
    store.incident(2, "resolved", OLD, "of-reopenable")  # not closed: it may still reopen
    store.incident(3, "closed", OLD, "of-closed")
    store.incident(4, "closed", ANCIENT)
    store.incident(5, "resolved", ANCIENT)
    store.run(1, "succeeded", ANCIENT)
    store.run(2, "running", ANCIENT)
    store.run(3, "failed", OLD)
    store.outbox("e1", "delivered", OLD)
    store.outbox("e2", "pending", OLD)
    store.outbox("e3", "dead", NOW - DAY)
    audit_before = store.sql("SELECT count(*) FROM audit_events")
    job = store.job()
    await job.run()

    assert store.ids("alerts", "fingerprint") == {"recent", "firing", "of-open", "of-reopenable"}
    assert store.ids("incidents") == {1, 2, 3, 5}
    assert {r[0] for r in store.sql("SELECT incident_id FROM timeline")} == {1, 2, 3, 5}
    assert {r[0] for r in store.sql("SELECT incident_id FROM incident_alerts")} == {1, 2, 3}
    assert store.ids("runs") == {2, 3}
    assert {r[0] for r in store.sql("SELECT run_id FROM run_steps")} == {2, 3}
    assert store.ids("outbox", "event_id") == {"e2", "e3"}
    assert store.sql("SELECT count(*) FROM audit_events") == audit_before
    assert job.deleted["alerts"] == 3 and job.deleted["incidents"] == 1 and job.deleted["runs"] == 1
    assert job.last_run == NOW and job.database_bytes

    # A second run finds nothing more.
    await job.run()
    assert job.deleted["alerts"] == 3 and job.deleted["incidents"] == 1


async def test_deletes_in_batches_through_the_writer(store: Store) -> None:
    for i in range(10):
        store.alert(f"a{i}", "resolved", OLD)
    job = store.job(batch_size=3, pause="1ms")
    commits = store.writer.commits
    await job.run()
    assert store.ids("alerts", "fingerprint") == set()
    assert job.deleted["alerts"] == 10
    # 3 + 3 + 3 + 1, each its own commit (and the rollup mark's).
    assert store.writer.commits - commits >= 4


async def test_disabled_prunes_nothing_but_rolls_up(store: Store) -> None:
    store.alert("gone", "resolved", OLD)
    store.incident(4, "closed", ANCIENT)
    job = store.job(enabled=False)
    await job.run()
    assert store.ids("alerts", "fingerprint") == {"gone"}
    assert store.ids("incidents") == {4}
    assert store.sql("SELECT name FROM rollup_marks") == [("availability_daily",)]


async def test_nothing_is_pruned_past_a_month_not_frozen(store: Store) -> None:
    """With incidents kept 1 day, an incident of this month stays until its month is frozen."""
    store.incident(7, "closed", NOW - 3 * DAY)
    job = store.job(incidents="1d")
    await job.run()
    assert 7 in store.ids("incidents")


def test_a_new_store_vacuums_incrementally(tmp_path: Path) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    try:
        assert db.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    finally:
        db.close()


def test_an_older_store_is_switched_once(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, sql in MIGRATIONS[:9]:
        conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("INSERT INTO counters VALUES ('x', '', 1.0)")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    db = Database(path)
    db.open()
    try:
        assert db.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert db.conn.execute("SELECT value FROM counters WHERE name = 'x'").fetchone()[0] == 1.0
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    finally:
        db.close()


async def test_a_frozen_month_is_read_as_it_stood_after_its_rows_are_pruned(store: Store) -> None:
    """What the CLI, the API, the console and the monthly job read (report_text over a reader's Sql)."""
    store.incident(4, "closed", OLD)
    month = periods.month(datetime.fromtimestamp(OLD - 600, UTC).strftime("%Y-%m"))
    catalogue = Catalogue(services=(Service(name="api"),))

    def read(service: str | None = None) -> dict[str, Any]:
        sql = store.db.reader()
        try:
            doc: dict[str, Any] = json.loads(report_text(sql, catalogue, month, now=NOW, service=service))
            built = build_report(sql, catalogue, month, now=NOW, time_zone="UTC")
        finally:
            sql.close()
        doc["built"] = sum(sum(s.incidents_by_priority.values()) for s in built.services)
        return doc

    before = read()
    assert before["built"] == 1
    await store.job(incidents="30d").run()
    assert 4 not in store.ids("incidents")
    after = read()
    # Built from the rows the month has none now; served, it is the month as frozen.
    assert after["built"] == 0
    assert after["services"] == before["services"]
    assert read("api")["services"] == [s for s in before["services"] if s["service"] == "api"]
    with pytest.raises(NotFound):
        read("nosuch")
