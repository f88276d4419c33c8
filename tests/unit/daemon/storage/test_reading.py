"""Reads outside the daemon: a missing or unreadable store is a StorageError that says which store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.errors import StorageError
from daemon.storage.database import Database
from daemon.storage.reading import reading
from daemon.storage.sql import Backend


def test_a_reader_sees_committed_rows_and_is_read_only(sql_backend: Backend) -> None:
    with reading(sql_backend) as sql:
        assert sql.scalar("SELECT count(*) AS n FROM runs") == 0
    with pytest.raises(StorageError) as refused, reading(sql_backend) as sql:
        sql.rows("INSERT INTO counters (name, labels, value) VALUES ('x', '', 1)")
    # SQLite: "attempt to write a readonly database"; PostgreSQL: "cannot execute INSERT in a read-only ...".
    assert re.search("read-?only", str(refused.value))
    assert sql_backend.description in str(refused.value)
    with reading(sql_backend) as sql:
        assert sql.scalar("SELECT count(*) AS n FROM counters") == 0


def test_a_missing_sqlite_store(tmp_path: Path) -> None:
    with (
        pytest.raises(StorageError, match=f"no store at {tmp_path / 'itsmd.db'}"),
        reading(Database(tmp_path / "itsmd.db")),
    ):
        pass


def test_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "itsmd.db").write_bytes(b"not a database, at all, nothing like one " * 100)
    with pytest.raises(StorageError, match="cannot read the store"), reading(Database(tmp_path / "itsmd.db")) as sql:
        sql.rows("SELECT * FROM runs")
