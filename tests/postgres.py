"""A database of its own on the machine's PostgreSQL for each test that asks (fixture `postgres_dsn`).

PostgreSQL 15 listens on 127.0.0.1:5432 with trust auth for `postgres` on the machines this runs on; set
ITSMD_TEST_PG_ADMIN_DSN to point elsewhere. A test creates its database and drops it afterwards, so tests
never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

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

_created: dict[Path, tuple[str, str]] = {}
"""This test's databases by the data folder they stand in for: (database name, env variable of its DSN)."""


def dsn_env_for(data_dir: Path) -> str:
    """The environment variable holding the DSN of the database that stands in for `data_dir`'s SQLite file
    in this test: created on first use, so a restart on the same folder finds its data again, and two
    folders of one test (two daemons) get a database each. Dropped when the test ends."""
    key = data_dir.resolve()
    if key not in _created:
        name, dsn = create_database()
        env = f"ITSMD_TEST_PG_DSN_{name.removeprefix('itsmd_test_').upper()}"
        os.environ[env] = dsn
        _created[key] = (name, env)
    return _created[key][1]


def storage_section(data_dir: Path) -> dict[str, str]:
    """The config's `storage` for a store in `data_dir` on the backend under test ({} on SQLite)."""
    if not ON_POSTGRES:
        return {}
    return {"backend": "postgres", "dsn_env": dsn_env_for(data_dir)}


def drop_created(keep: frozenset[Path] = frozenset()) -> None:
    """Drop the databases made for data folders other than `keep`, and forget their DSN variables."""
    for key in [k for k in _created if k not in keep]:
        name, env = _created.pop(key)
        os.environ.pop(env, None)
        drop_database(name)


@pytest.fixture(autouse=True)
def _backend_databases() -> Iterator[None]:
    """Every test drops the databases made for it. Those of module and session fixtures (set up before this
    runs) live on until the session ends."""
    before = frozenset(_created)
    yield
    if _created.keys() - before:
        drop_created(keep=before)


@pytest.fixture(autouse=True, scope="session")
def _backend_databases_session() -> Iterator[None]:
    yield
    drop_created()


sqlite_only = pytest.mark.sqlite_only
"""About the SQLite file itself (WAL, its corruption, a full disk under it): skipped with ITSMD_TEST_BACKEND=
postgres. Give the reason: `@pytest.mark.sqlite_only(reason="...")`."""
