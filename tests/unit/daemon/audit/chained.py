"""A store with a chained audit trail, written the way the daemon writes it, and ways to tamper with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.audit.start import open_audit
from daemon.storage.audit import TRIGGERS
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter


async def write_events(data_dir: Path, count: int, *, start: float = 1000.0) -> None:
    """Open (or create) the store of data_dir as the daemon does, record `count` events in two commits, close."""
    db = Database(data_dir / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db)
    try:
        audit = await open_audit(db, writer, data_dir / "audit.key", start)
        assert audit.chain_ok, audit.problems
        for i in range(count):
            audit.record(
                start + i,
                "alice" if i % 2 else "itsmd",
                "incident",
                i // 3 + 1,
                "acknowledged" if i % 3 else "opened",
                before=None if i % 3 == 0 else {"status": "open"},
                after={"status": "acknowledged", "note": f"event {i} \u00e9"},
            )
            if i == count // 2:
                await writer.flush()
        await writer.flush()
        await audit.anchor()
    finally:
        writer.shutdown_thread()
        db.close()


def tamper(db_path: Path, *sql: str) -> None:
    """Run statements as someone with write access to the file: drop the triggers (they would refuse) and put
    them back afterwards, so that only what the statements did shows."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        for statement in sql:
            conn.execute(statement)
        for create in TRIGGERS.values():
            conn.execute(create)
    finally:
        conn.close()
