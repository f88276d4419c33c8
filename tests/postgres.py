"""A database of its own on the machine's PostgreSQL for each test that asks (fixture `postgres_dsn`).

PostgreSQL 15 listens on 127.0.0.1:5432 with trust auth for `postgres` on the machines this runs on; set
ITSMD_TEST_PG_ADMIN_DSN to point elsewhere. A test creates its database and drops it afterwards, so tests
never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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
