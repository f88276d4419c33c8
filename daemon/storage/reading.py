"""Reads outside the daemon (the report and audit commands, the monthly report job): one reader of a backend,
its driver's errors raised as StorageError with what was being read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from daemon.errors import StorageError
from daemon.storage.database import Database
from daemon.storage.sql import Backend, Sql

DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
"""What an SQLite reader raises when the store cannot be read; PostgreSQL's reader raises StorageError itself,
naming the server."""


@contextmanager
def reading(backend: Backend) -> Iterator[Sql]:
    """A read-only reader for the block; StorageError when the store is missing, cannot be opened or read."""
    if isinstance(backend, Database) and not backend.path.is_file():
        # Opening a missing SQLite file read-only fails with "unable to open database file": say what is wrong.
        raise StorageError(f"no store at {backend.description}")
    try:
        sql = backend.reader(read_only=True)
    except DRIVER_ERRORS as exc:
        raise StorageError(f"cannot open the store {backend.description} read-only: {exc}") from exc
    try:
        yield sql
    except DRIVER_ERRORS as exc:
        raise StorageError(f"cannot read the store {backend.description}: {exc}") from exc
    finally:
        sql.close()


@contextmanager
def connected(backend: Backend) -> Iterator[Backend]:
    """`backend` ready for `reading` for the block, for a command outside the daemon (`itsmd report`, `itsmd
    audit verify`): a PostgreSQL backend hands out readers only once open (which checks the schema as the
    daemon's start does), and is closed afterwards; an SQLite file is read without opening it, so a command
    that only reads never writes to it."""
    if isinstance(backend, Database):
        yield backend
        return
    backend.open()
    try:
        yield backend
    finally:
        backend.close()
