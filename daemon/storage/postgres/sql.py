"""Reads on a psycopg connection, rows by column name (the `Sql` of daemon.storage.sql).

Record modules write `?` placeholders for both dialects; psycopg wants `%s`, and takes a literal `%` (in
`LIKE 'x%'`) as the start of one unless it is doubled. The rewritten text is cached per statement string:
record modules use a few hundred constant statements.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Generator, Sequence
from typing import Any

import psycopg
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

from daemon.errors import StorageError, StoreUnavailable
from daemon.storage.sql import Dialect, Row

PgConnection = psycopg.Connection[dict[str, Any]]


NUL_STANDIN = "\ufffd"
"""What a NUL in text becomes in PostgreSQL, whose text cannot hold one (SQLite's can). Text from alerts and
from commands' output may carry one: refused, it would fail its whole batch on every retry, and with it every
acknowledged write behind it."""


class _NulFreeText(StrDumperUnknown):
    def dump(self, obj: str) -> bytes | bytearray | memoryview | None:
        return super().dump(obj.replace("\x00", NUL_STANDIN) if "\x00" in obj else obj)


class _NulFreeBinary(StrBinaryDumper):
    def dump(self, obj: str) -> bytes | bytearray | memoryview | None:
        return super().dump(obj.replace("\x00", NUL_STANDIN) if "\x00" in obj else obj)


def nul_free_text(conn: PgConnection) -> None:
    """Text parameters and COPY rows of this connection with NUL_STANDIN for NUL: written and looked for alike."""
    conn.adapters.register_dumper(str, _NulFreeText)
    conn.adapters.register_dumper(str, _NulFreeBinary)


@functools.lru_cache(maxsize=4096)
def rewrite(sql: str) -> str:
    """`?` -> `%s` outside quoted text, `%` -> `%%` everywhere (psycopg parses `%` inside literals too)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote is not None:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def driver_error(exc: psycopg.Error, where: str, scrub: Callable[[str], str] = lambda s: s) -> StorageError:
    """A psycopg error as the StorageError callers handle (no driver import outside this package).
    Connection failures are StoreUnavailable (retry later); the message is one line, without the password."""
    message = scrub(" ".join(str(exc).split())) or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"PostgreSQL {where}: {message}")
    return StorageError(f"PostgreSQL {where}: {message}")


_cursor_names = itertools.count(1)


class PgSql:
    """An `Sql` over one connection (autocommit: each read is its own snapshot, nothing idles in a
    transaction). `release` is called instead of closing the connection: the pool takes it back."""

    def __init__(
        self, conn: PgConnection, *, where: str, release: Callable[[PgConnection], None] | None = None
    ) -> None:
        self._conn: PgConnection | None = conn
        self._where = where
        self._release = release

    @property
    def dialect(self) -> Dialect:
        return Dialect.POSTGRES

    @property
    def connection(self) -> PgConnection:
        """For the PostgreSQL backend's own use; record modules never need it."""
        if self._conn is None:
            raise StorageError("the connection is closed")
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[dict[str, Any]]:
        try:
            return self.connection.execute(rewrite(sql), params)
        except psycopg.Error as exc:
            raise driver_error(exc, self._where) from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._execute(sql, params)
        if cur.description is None:  # BEGIN, COMMIT, SET: no rows, as SQLite's cursor has none
            return []
        try:
            return list(cur.fetchall())
        except psycopg.Error as exc:
            raise driver_error(exc, self._where) from exc

    def pages(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Generator[list[Row], None, None]:
        """By a server-side cursor in a transaction of its own (a client-side cursor would receive the whole
        result into libpq's memory first). Use a reader, not the writer's connection: the transaction stays
        open until the last page is taken."""
        conn = self.connection
        try:
            with conn.transaction(), conn.cursor(name=f"itsmd_pages_{next(_cursor_names)}") as cur:
                cur.execute(rewrite(sql), params)
                while chunk := cur.fetchmany(size):
                    yield list(chunk)
        except psycopg.Error as exc:
            raise driver_error(exc, self._where) from exc

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self._execute(sql, params)
        if cur.description is None:
            return None
        try:
            return cur.fetchone()
        except psycopg.Error as exc:
            raise driver_error(exc, self._where) from exc

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        r = self.one(sql, params)
        return None if r is None else next(iter(r.values()), None)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._release is not None:
            self._release(conn)
        else:
            conn.close()
