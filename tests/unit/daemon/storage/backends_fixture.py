"""`write`: how the writer writes rows, for the record modules' tests (the `sql_backend` fixture is in
conftest.py)."""

from __future__ import annotations

from daemon.storage.database import Batch, Statement
from daemon.storage.sql import Backend


def write(backend: Backend, *rows: tuple[Statement, tuple[object, ...]]) -> None:
    """Append the rows to one batch and write it: how the writer would."""
    batch = Batch()
    for statement, row in rows:
        batch.append(statement, row)
    backend.write(batch)
