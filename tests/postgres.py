"""A database of its own on the machine's PostgreSQL for each test that asks (fixture `postgres_dsn`).

PostgreSQL 15 listens on 127.0.0.1:5432 with trust auth for `postgres` on the machines this runs on; set
ITSMD_TEST_PG_ADMIN_DSN to point elsewhere. A test creates its database and drops it afterwards, so tests
never see each other's rows.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from daemon.storage.database import Database
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Backend, Sql

ADMIN_DSN = os.environ.get("ITSMD_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)


def create_database() -> tuple[str, str]:
    """A new empty database: (name, dsn)."""
    name = f"itsmd_test_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
    params["dbname"] = name
    return name, psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """The DSN of a fresh database, dropped (sessions and all) after the test."""
    try:
        name, dsn = create_database()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}")
    try:
        yield dsn
    finally:
        drop_database(name)


# --- The backend the suite runs on (ITSMD_TEST_BACKEND=sqlite|postgres; scripts/test.sh runs both) ---------

BACKEND = os.environ.get("ITSMD_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgres"):
    raise RuntimeError(f"ITSMD_TEST_BACKEND={BACKEND!r}: use sqlite or postgres")
ON_POSTGRES = BACKEND == "postgres"

reaches = 0
"""How many times a test asked for its store on the backend under test (storage_section and the helpers
below): a test that never does runs on SQLite in both passes, so the PostgreSQL pass can leave it out
(tests/conftest.py, --backend-reach)."""


def _reach() -> None:
    global reaches  # noqa: PLW0603 (one counter the conftest hooks read)
    reaches += 1


@dataclass
class _Database:
    """A database of this session, migrated by the PostgreSQL backend, and what it held right after."""

    name: str
    dsn: str
    env: str
    schema: str = ""
    """A digest of its tables, columns, indexes, triggers and schemas: a test that changed them shows."""
    baseline: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    """The rows the migration wrote (the schema version, the lease row), by table."""


_created: dict[Path, _Database] = {}
"""The databases in use, by the data folder they stand in for."""
_spare: list[_Database] = []
"""Databases of this session given back, emptied, by an earlier test."""

_SCHEMA_DIGEST = """
SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
    SELECT 'c ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' '
        || coalesce(column_default, '') || ' ' || is_nullable AS x
    FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 't ' || tgrelid::regclass::text || '.' || tgname || ' ' || tgenabled::text
    FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'i ' || schemaname || ' ' || indexdef FROM pg_indexes
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'n ' || nspname FROM pg_namespace
) AS s
"""


def _tables(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def _prepare(db: _Database) -> _Database:
    """Empty the database, let the backend migrate it as a daemon would at its first start, and note what the
    migration left there."""
    with psycopg.connect(db.dsn, autocommit=True, connect_timeout=5) as conn:
        for (schema,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        ).fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.execute("CREATE SCHEMA public")
    backend = PostgresBackend(db.dsn)
    backend.open()
    backend.close()
    with psycopg.connect(db.dsn, autocommit=True, connect_timeout=5) as conn:
        db.schema = str(_scalar(conn, _SCHEMA_DIGEST))
        db.baseline = {}
        for table in _tables(conn):
            if found := conn.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608
                db.baseline[table] = found
    return db


def _scalar(conn: psycopg.Connection[tuple[Any, ...]], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def _reset(db: _Database) -> bool:
    """Back to the state right after migration: every table truncated and the baseline rows put back; the
    schema dropped and migrated again if the test changed it. False if that failed."""
    try:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (db.name,),
            )
        with psycopg.connect(db.dsn, connect_timeout=5) as conn:
            if _scalar(conn, _SCHEMA_DIGEST) != db.schema:
                conn.rollback()
                _prepare(db)
                return True
            # Replica mode skips user triggers: the audit table refuses TRUNCATE otherwise (superuser only).
            conn.execute("SET LOCAL session_replication_role = replica")
            listed = ", ".join(f'"{t}"' for t in _tables(conn))
            conn.execute(f"TRUNCATE {listed} RESTART IDENTITY")
            for table, found in db.baseline.items():
                marks = ", ".join(["%s"] * len(found[0]))
                with conn.cursor() as cur:
                    cur.executemany(f'INSERT INTO "{table}" OVERRIDING SYSTEM VALUE VALUES ({marks})', found)  # noqa: S608
    except psycopg.Error:
        return False
    return True


def dsn_env_for(data_dir: Path) -> str:
    """The environment variable holding the DSN of the database that stands in for `data_dir`'s SQLite file:
    taken on first use, so a restart on the same folder finds its data again, and two folders of one test
    (two daemons) get a database each. A database is migrated when first made; when the test ends it is
    emptied back to that state for a later test: on the shared machine CREATE plus DROP DATABASE took about
    1.4 s, dropping the schema and migrating again about 0.6 s, truncating about 0.2 s."""
    key = data_dir.resolve()
    if key not in _created:
        if _spare:
            db = _spare.pop()
        else:
            name, dsn = create_database()
            db = _prepare(_Database(name, dsn, f"ITSMD_TEST_PG_DSN_{name.removeprefix('itsmd_test_').upper()}"))
        os.environ[db.env] = db.dsn
        _created[key] = db
    return _created[key].env


def storage_section(data_dir: Path) -> dict[str, str]:
    """The config's `storage` for a store in `data_dir` on the backend under test ({} on SQLite)."""
    _reach()
    if not ON_POSTGRES:
        return {}
    return {"backend": "postgres", "dsn_env": dsn_env_for(data_dir)}


def backend_for_test(data_dir: Path) -> Backend:
    """The store of `data_dir` on the backend under test, not opened yet: its SQLite file, or the database
    standing in for it (the same one for the same folder within a test)."""
    _reach()
    if not ON_POSTGRES:
        return Database(data_dir / "itsmd.db")
    return PostgresBackend(os.environ[dsn_env_for(data_dir)])


def on_test_backend_document(document: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """A config document (parsed YAML) with its storage on the backend under test: unchanged on SQLite or when
    it names a backend itself; else a database of the test's own for `data_dir`, and the keys where a single
    node keeps them (a config on PostgreSQL must name them, as replicas share them)."""
    storage = storage_section(data_dir)
    if not storage or "backend" in (document.get("storage") or {}):
        return document
    document = {**document, "storage": {**(document.get("storage") or {}), **storage}}
    document["audit"] = {"key_file": str(data_dir / "audit.key"), **(document.get("audit") or {})}
    document["runbooks"] = {"digest_key_file": str(data_dir / "digest.key"), **(document.get("runbooks") or {})}
    return document


def store_args(config: Path, data_dir: Path) -> list[str]:
    """The arguments by which a CLI command (`itsmd audit verify`, ...) finds `data_dir`'s store on the
    backend under test: `--data-dir` on SQLite; on PostgreSQL also `--config`, a copy of `config` next to it
    with the storage section added."""
    _reach()
    if not ON_POSTGRES:
        return ["--data-dir", str(data_dir)]
    document = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    copy = config.with_name(f"{config.stem}.on-test-backend{config.suffix}")
    copy.write_text(yaml.safe_dump(on_test_backend_document(document, data_dir), sort_keys=False), encoding="utf-8")
    return ["--config", str(copy), "--data-dir", str(data_dir)]


@contextmanager
def stored(data_dir: Path) -> Iterator[Sql]:
    """A reader on `data_dir`'s store on the backend under test, for a test to check what a daemon (running
    or stopped) stored: reads there test the same thing on both backends."""
    backend = backend_for_test(data_dir)
    backend.open()
    try:
        sql = backend.reader()
        try:
            yield sql
        finally:
            sql.close()
    finally:
        backend.close()


def tamper(data_dir: Path, *statements: str, triggers: dict[str, str] | None = None) -> None:
    """Run portable SQL statements on `data_dir`'s store as someone with write access to it would, past the
    triggers that refuse changes (SQLite: `triggers`, name -> CREATE, dropped and put back around them;
    PostgreSQL: session_replication_role = replica, which skips user triggers for this session only)."""
    _reach()
    if not ON_POSTGRES:
        lite = sqlite3.connect(data_dir / "itsmd.db", isolation_level=None)
        try:
            for name in triggers or {}:
                lite.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                lite.execute(statement)
            for create in (triggers or {}).values():
                lite.execute(create)
        finally:
            lite.close()
        return
    with psycopg.connect(os.environ[dsn_env_for(data_dir)], connect_timeout=5) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(statement.encode())  # bytes: a query of the test's own, not a literal


def release(keep: frozenset[Path] = frozenset()) -> None:
    """Give back the databases of data folders other than `keep`, emptied, and forget their DSN variables."""
    for key in [k for k in _created if k not in keep]:
        db = _created.pop(key)
        os.environ.pop(db.env, None)
        if _reset(db):
            _spare.append(db)
        else:
            drop_database(db.name)


@pytest.fixture(autouse=True)
def _backend_databases() -> Iterator[None]:
    """Every test gives back the databases it took. Those of module and session fixtures (set up before
    this runs) stay theirs until the session ends."""
    before = frozenset(_created)
    yield
    if _created.keys() - before:
        release(keep=before)


@pytest.fixture(autouse=True, scope="session")
def _backend_databases_session() -> Iterator[None]:
    yield
    release()
    while _spare:
        drop_database(_spare.pop().name)


sqlite_only = pytest.mark.sqlite_only
"""About the SQLite file itself (WAL, its corruption, a full disk under it): skipped with ITSMD_TEST_BACKEND=
postgres. Give the reason: `@pytest.mark.sqlite_only(reason="...")`."""
