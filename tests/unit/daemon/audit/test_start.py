"""The daemon's side of the chain: the real app's events verify across a restart, the chain's state is on
/metrics, and a broken chain is logged and exported at start without stopping the daemon."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from daemon.audit.start import open_audit
from daemon.cli import main
from daemon.clock import ManualClock
from daemon.errors import StorageError
from daemon.storage.audit import TRIGGERS
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter
from tests.postgres import store_args, stored, tamper
from tests.unit.daemon.api.test_manage import CORRELATION, SERVICES, START, act, fire
from tests.unit.daemon.audit.chained import write_events
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running, series

CHAIN_OK = series("itsmd_audit_chain_ok")
HEAD = series("itsmd_audit_chain_head_sequence")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    write(tmp_path / "etc" / "rules" / "services.yaml", SERVICES)
    write(tmp_path / "etc" / "rules" / "correlation.yaml", CORRELATION)
    return write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\n")


def verify(capsys: pytest.CaptureFixture[str], config: Path, data: Path) -> tuple[int, list[str]]:
    code = main(["audit", "verify", *store_args(config, data)])
    out = capsys.readouterr()
    assert code != 2, out.err
    return code, out.out.splitlines()


async def head(d: Daemon) -> float:
    return (await d.metrics())[HEAD]


async def test_the_apps_events_verify_across_a_restart(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, clock = tmp_path / "data", ManualClock(epoch(START))
    async with running(config, data, clock) as d:
        await fire(d)
        clock.advance(60)
        assert (await act(d, 1, "acknowledge", reason="on it"))[0] == 200
        metrics = await d.metrics()
        # the chain's start, the incident opened, acknowledged
        assert (metrics[CHAIN_OK], metrics[HEAD]) == (1, 3)
    assert verify(capsys, config, data) == (0, ["OK: 3 events, head seq 3"])
    async with running(config, data, clock) as d:
        assert (await d.metrics())[CHAIN_OK] == 1
        assert await head(d) == 3
        clock.advance(60)
        assert (await d.post("/api/v1/incidents/1/notes", {"by": "bob", "text": "after the restart"}))[0] == 200
        assert await head(d) == 4
        # verify while the daemon runs: it reads the file as it is
        assert verify(capsys, config, data) == (0, ["OK: 4 events, head seq 4"])
    assert verify(capsys, config, data) == (0, ["OK: 4 events, head seq 4"])
    with stored(data) as sql:
        events = [(r["seq"], r["action"]) for r in sql.rows("SELECT seq, action FROM audit_events ORDER BY id")]
    assert events == [(1, "chain_started"), (2, "opened"), (3, "acknowledged"), (4, "note")]


async def test_a_deleted_tail_is_logged_and_exported_and_the_daemon_still_starts(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data, clock = tmp_path / "data", ManualClock(epoch(START))
    async with running(config, data, clock) as d:
        await fire(d)
        assert (await act(d, 1, "acknowledge"))[0] == 200
    tamper(data, "DELETE FROM audit_events WHERE seq = 3", triggers=TRIGGERS)
    caplog.set_level(logging.ERROR, "daemon.audit.start")
    async with running(config, data, clock) as d:
        assert (await d.metrics())[CHAIN_OK] == 0
        assert any("audit trail: event seq 3: missing: the event is deleted" in m for m in caplog.messages)
        assert (await d.post("/api/v1/incidents/1/notes", {"by": "bob", "text": "after"}))[0] == 200
        # new events continue after the anchor: the deleted one stays a gap
        assert await head(d) == 4
    code, lines = verify(capsys, config, data)
    assert (code, lines[0]) == (1, "event seq 3: missing: the event is deleted")


@pytest.mark.sqlite_only(reason="drops a trigger in the SQLite file (PostgreSQL's triggers differ)")
async def test_dropped_triggers_are_logged_and_exported(
    config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, clock = tmp_path / "data", ManualClock(epoch(START))
    async with running(config, data, clock):
        pass
    conn = sqlite3.connect(data / "itsmd.db")
    conn.execute("DROP TRIGGER audit_events_append_only_delete")
    conn.commit()
    conn.close()
    caplog.set_level(logging.ERROR, "daemon.audit.start")
    async with running(config, data, clock) as d:
        assert (await d.metrics())[CHAIN_OK] == 0
    assert "audit trail: trigger audit_events_append_only_delete is missing: the table no longer refuses changes" in (
        caplog.messages
    )


async def test_an_intact_chain_checks_out_at_start(tmp_path: Path) -> None:
    await write_events(tmp_path, 5)
    db = Database(tmp_path / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db)
    try:
        audit = await open_audit(db, writer, tmp_path / "audit.key", 5000.0)
        assert (audit.chain_ok, audit.committed_head.seq) == (True, 6)
    finally:
        writer.shutdown_thread()
        db.close()


async def test_a_missing_key_stops_the_start_while_chained_events_exist(tmp_path: Path) -> None:
    await write_events(tmp_path, 2)
    (tmp_path / "audit.key").rename(tmp_path / "elsewhere.key")
    db = Database(tmp_path / "itsmd.db")
    db.open()
    writer = GroupCommitWriter(db)
    try:
        with pytest.raises(StorageError, match=r"audit key file .*audit.key is missing.*up to seq 3"):
            await open_audit(db, writer, tmp_path / "audit.key", 5000.0)
        assert not (tmp_path / "audit.key").exists()
    finally:
        writer.shutdown_thread()
        db.close()
