"""`sql_backend`: an opened, migrated, empty store of every backend that exists (only SQLite so far), for the
record modules' tests. Import it into a test module (`from ...backends_fixture import sql_backend`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.storage.database import Batch, Database, Statement
from daemon.storage.sql import Backend


@pytest.fixture(params=["sqlite"])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend: Backend = Database(tmp_path / "itsmd.db")
    backend.open()
    try:
        yield backend
    finally:
        backend.close()


def write(backend: Backend, *rows: tuple[Statement, tuple[object, ...]]) -> None:
    """Append the rows to one batch and write it: how the writer would."""
    batch = Batch()
    for statement, row in rows:
        batch.append(statement, row)
    backend.write(batch)
