from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.errors import IncompatibleStore, StorageError
from daemon.model import Source
from daemon.storage.alerts import load_active_alerts
from daemon.storage.counters import load_counters
from daemon.storage.database import Batch, Database, Statement
from daemon.storage.incidents import load_incidents
from daemon.storage.schema import APPLICATION_ID, LATEST
from tests.unit.daemon.records import Stack, incoming

pytestmark = pytest.mark.sqlite_only(
    reason="the SQLite backend's own tests (daemon/storage/database.py: its file, PRAGMAs, migrations)"
)

T0 = 1_800_000_000.0


def test_new_file_gets_schema_wal_and_identity(tmp_path: Path) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    try:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    finally:
        db.close()
    again = Database(tmp_path / "itsmd.db")
    again.open()  # reopening an own file is fine and migrates nothing
    again.close()


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(IncompatibleStore, match="some other program"):
        Database(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
    conn.close()


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(IncompatibleStore, match="not a usable itsmd database"):
        Database(path).open()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    db = Database(path)
    db.open()
    db.conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(IncompatibleStore, match="newer than this itsmd"):
        Database(path).open()


def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create data directory"):
        Database(blocker / "sub" / "itsmd.db").open()


async def test_restart_restores_alerts_incidents_and_counters(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    transitions, _ = s.table.apply(
        [incoming(alertname="A", service="api", instance="1"), incoming(alertname="A", service="api", instance="2")],
        Source.ALERTMANAGER,
        T0,
    )
    s.correlator.handle(transitions, T0)
    transitions, _ = s.table.apply(
        [incoming(alertname="A", service="api", instance="2", firing=False, ends_at=T0 + 5)],
        Source.ALERTMANAGER,
        T0 + 5,
    )
    s.correlator.handle(transitions, T0 + 5)
    await s.writer.flush()
    s.close()

    r = Stack(tmp_path)
    try:
        assert len(load_active_alerts(r.db.primary, now=T0 + 10, retention=3600)) == 2
        incidents, next_incident_id = load_incidents(r.db.primary)
        assert next_incident_id == 2
        [incident] = incidents
        assert len(incident.fingerprints) == 2
        assert list(incident.firing) == [incoming(alertname="A", service="api", instance="1").fingerprint]
        assert (
            load_counters(r.db.primary)[("itsmd_incidents_opened_total", '{"priority": "P3", "service": "api"}')] == 1
        )
    finally:
        r.close()


def test_module_statements_run_in_order_and_newer_rows_win(tmp_path: Path) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    try:
        db.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
        db.conn.execute("CREATE TABLE child (parent_id INTEGER NOT NULL REFERENCES parent (id), note TEXT)")
        parent = Statement("INSERT OR REPLACE INTO parent (id, name) VALUES (?, ?)", order=1)
        child = Statement("INSERT INTO child (parent_id, note) VALUES (?, ?)", order=2)
        older = Batch()
        older.append(child, (7, "first"))  # added before its parent: order, not insertion, decides
        older.upsert(parent, 7, (7, "old name"))
        newer = Batch()
        newer.upsert(parent, 7, (7, "new name"))
        newer.append(child, (7, "second"))
        older.absorb(newer)
        assert older
        db.write(older)
        assert db.conn.execute("SELECT name FROM parent").fetchall() == [("new name",)]
        assert db.conn.execute("SELECT note FROM child ORDER BY rowid").fetchall() == [("first",), ("second",)]
        failing = Batch()
        failing.append(child, (99, "orphan"))
        with pytest.raises(StorageError, match="FOREIGN KEY"):
            db.write(failing)  # the foreign key holds, and nothing of the batch is kept
        assert db.conn.execute("SELECT count(*) FROM child").fetchone()[0] == 2
    finally:
        db.close()
