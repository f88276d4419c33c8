"""The audit trail is append-only in the database itself, and keeps only what changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.audit import AuditLog, read_events
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter


async def test_events_are_written_with_their_changes_and_never_updated_or_deleted(tmp_path: Path) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db)
    audit = AuditLog(writer)
    try:
        audit.record(
            10.0,
            "alice",
            "incident",
            1,
            "acknowledged",
            before={"status": "open", "priority": "P2"},
            after={"status": "acknowledged", "priority": "P2"},
        )
        audit.record(11.0, "itsmd", "problem", 3, "opened", before=None, after={"status": "candidate"})
        await writer.flush()
        [first, second] = read_events(db.conn, None, None, 10, 0)
        assert (first["actor"], first["before"], first["after"]) == (
            "alice",
            {"status": "open"},
            {"status": "acknowledged"},
        )
        assert (second["record_type"], second["record_id"], second["before"]) == ("problem", "3", None)
        assert read_events(db.conn, "incident", "1", 10, 0) == [first]
        for sql in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.conn.execute(sql)
        assert len(read_events(db.conn, None, None, 10, 0)) == 2
    finally:
        writer.shutdown_thread()
        db.close()
