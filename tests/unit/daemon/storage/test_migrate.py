"""`itsmd migrate`: an SQLite store a real app run filled, copied into a fresh PostgreSQL database and compared
table by table, row by row; refusals leave both sides as they were."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.cli import main
from daemon.clock import ManualClock
from daemon.config import load_config
from daemon.storage import rollups
from daemon.storage.database import Batch, Database
from daemon.storage.schema import APPLICATION_ID, MIGRATIONS
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, eventually
from tests.unit.daemon.notify.outbox.harness import SECRET, SECRET_ENV
from tests.unit.daemon.notify.outbox.receiver_server import Receiver

DSN_ENV = "ITSMD_TEST_MIGRATE_DSN"
START = "2026-11-23T18:00:00Z"
RUNBOOKS = {
    "fix": """
        name: fix
        params:
          host: {pattern: '^[a-z0-9-]+$'}
        steps:
          - name: say
            exec: {argv: [echo, "{{ params.host }}"]}
          - name: done
            exec: {argv: ["true"]}
        """,
    "quick": """
        name: quick
        trigger: {on: [drill]}
        steps:
          - {name: act, exec: {argv: ["true"]}}
        verify:
          - {name: check, exec: {argv: ["true"]}}
        """,
}
DRILLS = """
drills:
  - name: checkout-failover
    service: checkout
    runbook: quick
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {verify: true}
"""
CORRELATION = """
reopen_window: 0s
flapping: {enabled: false}
recurrence: {count: 2, window: 1h}
"""


@asynccontextmanager
async def sqlite_app(config: Path, data: Path, clock: ManualClock) -> AsyncIterator[Daemon]:
    """The app on the SQLite file of `data`, whatever backend the rest of the suite runs on: the source."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(load_config(config, data_dir=data), clock=clock)))
    await client.start_server()
    try:
        async with client.get("/-/ready") as resp:
            assert resp.status == 200, await resp.text()
        yield Daemon(client, clock)
    finally:
        await client.close()


async def fill(tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with rows in every kind of record: alerts, incidents (acknowledged, with notes), a problem
    from recurring incidents, a manual run (a standard change), a drill, webhook deliveries, audit events."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    etc, data = tmp_path / "etc", tmp_path / "data"
    webhooks = f"notify:\n  webhooks:\n    - name: hook\n      url: {hook.url}\n      secret: {{env: {SECRET_ENV}}}\n"
    config = write_setup(etc, RUNBOOKS, webhooks)
    write(etc / "rules" / "correlation.yaml", CORRELATION)
    write(etc / "rules" / "drills.yaml", textwrap.dedent(DRILLS))
    clock = ManualClock(epoch(START))
    async with sqlite_app(config, data, clock) as d:
        # A change on api first: the incidents opened after it are linked to it as its suspected effects.
        body = {"runbook": "fix", "params": {"host": "web-1"}, "service": "api"}
        status, run = await call(d, "POST", "/api/v1/runs", body)
        assert status == 201, run
        assert (await until(d, run["id"]))["status"] == "succeeded"
        labels = {"alertname": "Down", "service": "api", "severity": "critical", "instance": "1"}
        for _ in range(2):
            now = d.clock.now()
            assert (await d.v2([{"labels": labels, "startsAt": _iso(now), "endsAt": _iso(now + 600)}]))[0] == 200
            d.clock.advance(10)
            assert (await d.v2([{"labels": labels, "startsAt": _iso(now), "endsAt": _iso(d.clock.now())}]))[0] == 200
            d.clock.advance(10)
        now = d.clock.now()
        other = {"alertname": "Slow", "service": "db", "instance": "é ' \" %s ?"}
        assert (await d.v2([{"labels": other, "startsAt": _iso(now), "endsAt": _iso(now + 600)}]))[0] == 200
        [slow] = [i for i in await d.incidents("open") if i["service"] == "db"]
        assert (await d.post(f"/api/v1/incidents/{slow['id']}/acknowledge", {"by": "ann", "reason": "on it"}))[0] == 200
        assert (await d.post(f"/api/v1/incidents/{slow['id']}/notes", {"by": "ann", "text": "50% ?"}))[0] == 200
        status, drill = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {})
        assert status == 202, drill
        await until(d, drill["run_id"])
        await eventually(lambda: _hook_got(hook, 3))
        archive_before = _iso(d.clock.now())
    retained(data / "itsmd.db")
    # The audit trail up to its head archived: the copy must carry the cut and the chain that follows it.
    args = ["--data-dir", str(data), "--before", archive_before, "--out", str(tmp_path / "audit-archive.jsonl")]
    assert main(["audit", "archive", *args]) == 0
    return data


def retained(db_path: Path) -> None:
    """Rows of the retention tables, as housekeeping writes them (a real run needs months on the clock)."""
    db = Database(db_path)
    db.open()
    try:
        batch = Batch()
        day = epoch(START) // 86400 * 86400
        batch.upsert(rollups.SET_DAY, ("api", day), ("api", day, 20.0, 0.5))
        batch.upsert(rollups.SET_MARK, rollups.AVAILABILITY, (rollups.AVAILABILITY, day + 86400))
        body = '{"period": "2026-11", "note": "é \' % ?"}'
        batch.upsert(rollups.FREEZE_MONTH, ("2026-11", "UTC"), ("2026-11", "UTC", day + 8 * 86400, body))
        db.write(batch)
    finally:
        db.close()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def _hook_got(hook: Receiver, count: int) -> bool:
    return len(hook.got) >= count


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


def target_config(tmp_path: Path, data: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config on PostgreSQL whose data folder (audit key and anchor) is the source's."""
    monkeypatch.setenv(DSN_ENV, dsn)
    return write(
        tmp_path / "pg" / "itsmd.yaml",
        f"data_dir: {data}\nstorage:\n  backend: postgres\n  dsn_env: {DSN_ENV}\n"
        f"audit:\n  key_file: {data}/audit.key\nrunbooks:\n  digest_key_file: {data}/digest.key\n",
    )


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda r: [(v is None, type(v).__name__, v if v is not None else 0) for v in r])


def copied(dsn: str, db_path: Path) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """Every SQLite table's rows, and the same columns' rows in PostgreSQL."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    source, target = {}, {}
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        with psycopg.connect(dsn) as pg:
            for name in names:
                cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
                listed = ", ".join(f'"{c}"' for c in cols)
                source[name] = _sorted(conn.execute(f'SELECT {listed} FROM "{name}"').fetchall())  # noqa: S608
                target[name] = _sorted(pg.execute(f'SELECT {listed} FROM "{name}"').fetchall())  # noqa: S608
    finally:
        conn.close()
    return source, target


async def test_every_table_is_copied_identically_and_a_second_migrate_refuses(
    tmp_path: Path,
    hook: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    postgres_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = await fill(tmp_path, hook, monkeypatch)
    db_path = data / "itsmd.db"
    before = db_path.read_bytes()
    config = target_config(tmp_path, data, postgres_dsn, monkeypatch)

    assert main(["migrate", "--config", str(config), "--from", str(data)]) == 0
    out = capsys.readouterr().out
    source, target = copied(postgres_dsn, db_path)
    empty = sorted(n for n, rows in source.items() if not rows)
    # Every kind of record was written by the run above, so the comparison covers them all.
    assert empty == [], f"the app run left these tables empty, the test proves nothing about them: {empty}"
    for name, rows in source.items():
        assert target[name] == rows, f"{name} differs after the copy"
        assert f"\n{name} " in f"\n{out}" and f" {len(rows)}" in out
    assert "chain to seq" in out and "verifies on the copy" in out and out.rstrip().endswith("tables")
    assert db_path.read_bytes() == before, "the source was written to"

    # The next id PostgreSQL hands out comes after the copied ones.
    with psycopg.connect(postgres_dsn) as pg:
        for table, column, sequence in pg.execute(
            "SELECT table_name, column_name, pg_get_serial_sequence(table_name, column_name) "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND pg_get_serial_sequence(table_name, column_name) IS NOT NULL"
        ).fetchall():
            if source.get(table):
                highest = pg.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()  # noqa: S608
                following = pg.execute("SELECT nextval(%s)", (sequence,)).fetchone()
                assert highest is not None and following is not None and following[0] > highest[0], table

    assert main(["migrate", "--config", str(config), "--from", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert "already holds records" in err and "nothing was changed" in err
    assert copied(postgres_dsn, db_path)[1] == target


def test_a_store_of_an_older_schema_is_refused_and_left_alone(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "itsmd.db", isolation_level=None)
    for version, sql in MIGRATIONS[:-1]:
        conn.executescript(
            f"BEGIN; {sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version}; COMMIT;"
        )
    conn.close()
    before = (data / "itsmd.db").read_bytes()
    config = target_config(tmp_path, data, postgres_dsn, monkeypatch)
    assert main(["migrate", "--config", str(config), "--from", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"schema version {MIGRATIONS[-2][0]}" in err and "run `itsmd run` once on it" in err
    assert (data / "itsmd.db").read_bytes() == before


def test_a_config_that_is_not_postgres_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / "itsmd.yaml", "{}\n")
    assert main(["migrate", "--config", str(config), "--from", str(tmp_path)]) == 2
    assert "does not configure PostgreSQL" in capsys.readouterr().err


def empty_store(data: Path) -> Path:
    """A store of this version's schema with no records, as `itsmd run` leaves it at its first start."""
    db = Database(data / "itsmd.db")
    db.open()
    db.close()
    return data / "itsmd.db"


def test_a_table_postgresql_lacks_fails_the_copy_and_commits_nothing(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = empty_store(tmp_path / "data")
    # A table a later migration would add: found in sqlite_master, so it cannot be left behind unnoticed.
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE future_records (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute("INSERT INTO future_records (body) VALUES ('x')")
    config = target_config(tmp_path, tmp_path / "data", postgres_dsn, monkeypatch)
    assert main(["migrate", "--config", str(config), "--from", str(db_path)]) == 1
    assert "the PostgreSQL schema has no table future_records" in capsys.readouterr().err
    with psycopg.connect(postgres_dsn) as pg:
        assert pg.execute("SELECT count(*) FROM incidents").fetchone() == (0,)


def test_a_store_a_running_daemon_holds_is_refused(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = empty_store(tmp_path / "data")
    # Another process with the store open in WAL mode, as a running daemon has it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode = WAL');"
            "c.execute('SELECT count(*) FROM incidents').fetchone(); print('open', flush=True); sys.stdin.read()",
            str(db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        config = target_config(tmp_path, tmp_path / "data", postgres_dsn, monkeypatch)
        assert main(["migrate", "--config", str(config), "--from", str(tmp_path / "data")]) == 1
        assert "is open in another process: stop the daemon" in capsys.readouterr().err
    finally:
        holder.communicate("")
    assert main(["migrate", "--config", str(config), "--from", str(tmp_path / "data")]) == 0
