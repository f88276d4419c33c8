"""A fresh PostgreSQL database per benchmark case, created and dropped through psycopg.

The server is named by ``ITSMD_BENCH_PG_ADMIN_DSN`` (default: user postgres on 127.0.0.1:5432, database
postgres), which must be allowed to create databases. Every database made here is called
``itsmd_bench_<hex>`` and is dropped with ``WITH (FORCE)``: a replica killed with SIGKILL leaves sessions
behind that PostgreSQL has not noticed yet.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ADMIN_DSN = os.environ.get("ITSMD_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
_NAME_FILE = "pg-database"  # in a case's workdir: which database to drop when the case ends


@dataclass(frozen=True)
class TempDatabase:
    name: str
    dsn: str


def unavailable() -> str | None:
    """Why no database can be made here, or None."""
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {ADMIN_DSN!r} not reachable: {str(exc).strip().splitlines()[0]}"
    return None


def create_database() -> TempDatabase:
    name = f"itsmd_bench_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(ADMIN_DSN, connect_timeout=5, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return TempDatabase(name, make_conninfo(ADMIN_DSN, dbname=name))


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, connect_timeout=5, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def prepare_workdir(workdir: Path) -> TempDatabase:
    """A new database whose DSN is in ``workdir/dsn`` (what ``storage.dsn_file`` names) and whose name is kept
    for `cleanup_workdir`."""
    db = create_database()
    (workdir / _NAME_FILE).write_text(db.name, encoding="utf-8")
    dsn_file = workdir / "dsn"
    dsn_file.write_text(db.dsn + "\n", encoding="utf-8")
    dsn_file.chmod(0o600)
    return db


def database_of(workdir: Path) -> str | None:
    """The database `prepare_workdir` made for ``workdir``, if any."""
    name_file = workdir / _NAME_FILE
    return name_file.read_text(encoding="utf-8").strip() if name_file.is_file() else None


def session_pids(name: str) -> list[int]:
    """Server processes of the sessions open on database ``name`` now (one per connection): their CPU is what
    PostgreSQL spends on the daemon's queries, WAL flushes by the backends included."""
    with psycopg.connect(ADMIN_DSN, connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
    return [int(r[0]) for r in rows]


def cleanup_workdir(workdir: Path) -> None:
    """Drop the database `prepare_workdir` made for ``workdir``, if it made one."""
    name = database_of(workdir)
    if name is not None:
        drop_database(name)
        (workdir / _NAME_FILE).unlink()
