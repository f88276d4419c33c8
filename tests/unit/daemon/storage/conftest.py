"""`sql_backend`: each record module's tests run against every backend there is, opened and migrated.

Only the SQLite file today; PostgreSQL joins as one more param (its database from `postgres_dsn`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.storage.database import Database
from daemon.storage.sql import Backend

BACKENDS = ["sqlite"]


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Database(tmp_path / "itsmd.db")
    raise AssertionError(f"no backend {request.param}")


@pytest.fixture(params=BACKENDS)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend = _backend(request, tmp_path)
    backend.open()
    try:
        yield backend
    finally:
        backend.close()
