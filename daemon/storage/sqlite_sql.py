"""Reads on an SQLite connection, rows by column name (the `Sql` of daemon.storage.sql)."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Sequence
from typing import Any

from daemon.storage.sql import Dialect, Row


class SqliteSql:
    def __init__(self, conn: sqlite3.Connection, *, owned: bool = True) -> None:
        self._conn = conn
        self._owned = owned

    @property
    def dialect(self) -> Dialect:
        return Dialect.SQLITE

    @property
    def connection(self) -> sqlite3.Connection:
        """For the SQLite backend's own use (registering functions, PRAGMAs); record modules never need it."""
        return self._conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur]

    def pages(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Generator[list[Row], None, None]:
        # SQLite steps the statement as rows are fetched: a page is all there is in memory at once.
        cur = self._conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        while chunk := cur.fetchmany(size):
            yield [dict(zip(names, r, strict=True)) for r in chunk]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self._conn.execute(sql, params)
        r = cur.fetchone()
        if r is None:
            return None
        return dict(zip([d[0] for d in cur.description or ()], r, strict=True))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        r = self._conn.execute(sql, params).fetchone()
        return None if r is None else r[0]

    def close(self) -> None:
        if self._owned:
            self._conn.close()
