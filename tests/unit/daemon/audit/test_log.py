"""The audit trail is append-only in the database itself, keeps only what changed, and chains its events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.audit import AuditLog
from daemon.audit.chain import load_key, read_anchor
from daemon.audit.start import open_audit
from daemon.audit.verify import check
from daemon.storage.audit import read_events
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
        [first, second] = read_events(db.primary, None, None, 10, 0)
        assert (first["actor"], first["before"], first["after"]) == (
            "alice",
            {"status": "open"},
            {"status": "acknowledged"},
        )
        assert (second["record_type"], second["record_id"], second["before"]) == ("problem", "3", None)
        assert read_events(db.primary, "incident", "1", 10, 0) == [first]
        for sql in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.conn.execute(sql)
        assert len(read_events(db.primary, None, None, 10, 0)) == 2
    finally:
        writer.shutdown_thread()
        db.close()


async def test_the_head_counts_only_committed_events_and_whole_seconds_verify(tmp_path: Path) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db)
    try:
        audit = await open_audit(db, writer, tmp_path / "audit.key", 5.0)
        assert audit.committed_head.seq == 1
        # an int time is stored as REAL: the mac must be of the float SQLite gives back
        audit.record(10, "alice", "incident", 1, "note", before=None, after={"text": "x"})
        audit.record(11, "alice", "incident", 1, "note", before=None, after={"text": "y"})
        assert audit.committed_head.seq == 1
        await writer.flush()
        assert audit.committed_head.seq == 3
        await audit.anchor()
        assert read_anchor(tmp_path / "audit.head") == audit.committed_head
        report = check(db.primary, load_key(tmp_path / "audit.key"), tmp_path / "audit.head")
        assert (report.ok, report.events, report.head.seq) == (True, 3, 3)
    finally:
        writer.shutdown_thread()
        db.close()
