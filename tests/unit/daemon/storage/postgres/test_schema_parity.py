"""The PostgreSQL schema cannot drift from the SQLite one: same tables, columns (in order), keys, indexes;
and every record module's statement is one PostgreSQL accepts."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import psycopg

from daemon.storage.database import Database, Statement
from daemon.storage.postgres import schema
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.retention import Kind

RECORD_MODULES = (
    "daemon.storage.audit",
    "daemon.storage.audit_cuts",
    "daemon.storage.retention",
    "daemon.storage.rollups",
    "daemon.storage.changes",
    "daemon.storage.drills",
    "daemon.storage.incidents",
    "daemon.storage.outbox",
    "daemon.storage.problems",
    "daemon.storage.runs",
)


def _sqlite_shape(tmp_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    try:
        conn = db.conn
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        shape = {}
        for name in names:
            info = conn.execute(f"PRAGMA table_info({name})").fetchall()
            columns = [r[1] for r in info]
            key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            shape[name] = (columns, key)
        return shape
    finally:
        db.close()


def _postgres_shape(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, tuple[list[str], list[str]]]:
    shape: dict[str, tuple[list[str], list[str]]] = {}
    for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
        columns = [
            str(c)
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        key = [
            str(c)
            for (c,) in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)",
                (table,),
            )
        ]
        shape[str(table)] = (columns, key)
    return shape


def test_postgres_tables_have_the_sqlite_columns_and_keys(tmp_path: Path, postgres_dsn: str) -> None:
    backend = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1)
    backend.open()
    backend.close()
    with psycopg.connect(postgres_dsn) as conn:
        pg = _postgres_shape(conn)
    lite = _sqlite_shape(tmp_path)
    assert set(pg) - schema.REPLICA_TABLES == set(lite)
    for table, (columns, key) in lite.items():
        assert pg[table][0] == columns, table
        assert pg[table][1] == key, table


def test_postgres_has_the_sqlite_indexes(tmp_path: Path, postgres_dsn: str) -> None:
    backend = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1)
    backend.open()
    backend.close()
    db = Database(tmp_path / "itsmd.db")
    db.open()
    try:
        lite = {
            (r[0], r[1], r[2])
            for r in db.conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    finally:
        db.close()
    with psycopg.connect(postgres_dsn) as conn:
        pg = {
            str(name): str(sql)
            for name, sql in conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        }
    for name, table, sql in lite:
        assert name in pg, name
        shape = re.fullmatch(r".* ON \w+ (\([^)]*\))(?:\s+WHERE\s+(.*))?", sql.strip(), re.S)
        assert shape is not None, sql
        columns = re.sub(r"\s+", "", shape[1])
        assert f"ON public.{table} USING btree {columns.replace(',', ', ')}" in pg[name], (sql, pg[name])
        assert ("UNIQUE" in sql) == ("UNIQUE" in pg[name]), name
        # A partial index: the same condition (PostgreSQL prints it with casts and parentheses).
        pg_where = pg[name].partition(" WHERE ")[2]
        assert _condition(shape[2] or "") == _condition(pg_where), (sql, pg[name])


def _statements() -> list[tuple[str, Statement]]:
    found = []
    for module_name in RECORD_MODULES:
        module = importlib.import_module(module_name)
        for attr, value in vars(module).items():
            if isinstance(value, Statement):
                found.append((f"{module_name}.{attr}", value))
            elif isinstance(value, Kind):  # housekeeping's prunes: a kind's deletes, children first
                found.extend((f"{module_name}.{attr}.deletes[{i}]", d) for i, d in enumerate(value.deletes))
    return found


def _numbered(sql: str) -> str:
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


def test_record_statements_are_accepted_by_postgres(postgres_dsn: str) -> None:
    backend = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1)
    backend.open()
    backend.close()
    refused = {}
    with psycopg.connect(postgres_dsn) as conn:
        for n, (name, statement) in enumerate(_statements()):
            # PREPARE parses and plans the statement (tables, columns, conflict target) without running it.
            result = conn.pgconn.prepare(f"probe{n}".encode(), _numbered(statement.sql).encode())
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                refused[name] = (result.error_message or b"").decode().strip()
    assert len(_statements()) > 10
    assert refused == {}


def _condition(text: str) -> str:
    """A partial index's condition without casts, parentheses and spaces; PostgreSQL prints `x IN (...)` back
    as `x = ANY (ARRAY[...])`."""
    bare = re.sub(r"::\w+|[()\s;]", "", text)
    return re.sub(r"=ANYARRAY\[(.*?)\]", r"IN\1", bare)
