"""What the record modules of daemon/storage see of a database: a dialect, reads by column name, and batches.

    Backend             one database (SQLite file or PostgreSQL): open/migrate, write a Batch, hand out readers
    └── Sql             a connection for reads in the caller's thread; rows come back as mappings by name

Record modules (daemon/storage/<record>.py) own their SQL. They write `?` placeholders in both dialects (the
PostgreSQL implementation rewrites them to psycopg's `%s`), name the conflict target of every upsert
(`ON CONFLICT (id) DO UPDATE SET ...`, which both dialects accept), and branch on `sql.dialect` only where
the two really differ (JSON array parameters, case-insensitive matching). Engine packages never import this
module's connections or write SQL: they call the record modules.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from daemon.storage.database import Batch

Row = Mapping[str, Any]

row_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
"""JSON text of a stored value, compact with sorted keys: the same text for the same value (incident search
narrows on labels' exact text). One encoder for every row: json.dumps with these options builds one per call,
1.4 us of each of the three a new alert costs."""


_decoder = json.JSONDecoder()


def row_value(text: str) -> Any:
    """A stored JSON text (row_json's) back as its value by the decoder's raw_decode: json.loads adds a Python
    call and two regular-expression matches per text, a third of decoding the 200k label and annotation
    texts of 100k alerts at start-up (cProfile). Text that is not exactly one JSON value, which row_json never
    writes, goes to json.loads, which reads surrounding whitespace or says what is wrong."""
    try:
        value, end = _decoder.raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


class Dialect(enum.Enum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class Sql(Protocol):
    """A connection for reads. Not shared between threads; close() when done with it."""

    @property
    def dialect(self) -> Dialect: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query, each a mapping of column name to value."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None."""
        ...

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    def pages(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Generator[list[Row], None, None]:
        """The rows of a query `size` at a time, for a read too big to hold at once (start-up's active
        alerts): the whole result is never in memory as rows. One snapshot; consume it before other reads."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """One database. Blocking: callers run it in threads (the writer in its own)."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def description(self) -> str:
        """Where it is, for logs and errors: a path, or host/dbname without the password."""
        ...

    def open(self) -> None:
        """Connect, check the database is itsmd's and not newer than this build, migrate it.
        StorageError when unreachable, IncompatibleStore when foreign or newer."""
        ...

    def close(self) -> None: ...

    def write(self, batch: Batch) -> None:
        """One transaction: all of the batch or nothing, raised. Fenced when a fence is set and no longer
        holds (another replica leads)."""
        ...

    @property
    def primary(self) -> Sql:
        """The writer's own connection, for loads before the writer runs (and by nothing else)."""
        ...

    def reader(self, *, read_only: bool = True) -> Sql:
        """A new connection for reads in the calling thread."""
        ...

    def checkpoint(self) -> None:
        """Housekeeping off the commit path (SQLite: WAL checkpoint; PostgreSQL: nothing)."""
        ...


def has_table(sql: Sql, table: str) -> bool:
    """Whether the store has a table: for reads a store of an older schema may run before the daemon migrated
    it (a command reading it read-only)."""
    if sql.dialect is Dialect.SQLITE:
        found = sql.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    else:
        found = sql.scalar("SELECT to_regclass(?) IS NOT NULL", (table,))
    return bool(found)
