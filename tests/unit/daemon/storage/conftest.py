"""`sql_backend`: each record module's tests run against every backend there is, opened and migrated.

SQLite: a file in the test's tmp_path. PostgreSQL: a database of the test's own on the machine's server
(tests/postgres.py), dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.storage.database import Database
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Backend
from tests.postgres import create_database, drop_database

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend: Backend
    dropped: str | None = None
    if request.param == "sqlite":
        backend = Database(tmp_path / "itsmd.db")
    elif request.param == "postgres":
        dropped, dsn = create_database()
        backend = PostgresBackend(dsn, pool_min=0, pool_max=2, connect_timeout=5)
    else:
        raise AssertionError(f"no backend {request.param}")
    try:
        backend.open()
        try:
            yield backend
        finally:
            backend.close()
    finally:
        if dropped is not None:
            drop_database(dropped)
