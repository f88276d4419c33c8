"""The SQLite file: opening and checking it, migrating it, and writing batches (loads: the record modules).

Blocking calls: the writer runs them in its own thread, the API readers in theirs.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import IncompatibleStore, StorageError, StoreUnavailable
from daemon.storage.alerts import ALERT_COLUMNS, AlertRow
from daemon.storage.schema import APPLICATION_ID, LATEST, MIGRATIONS
from daemon.storage.sql import Dialect, Sql
from daemon.storage.sqlite_sql import SqliteSql

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Statement:
    """A parameterised statement a record module owns (its table, its upsert). Batches key rows by it, so a
    new record type adds its own tables without touching this module. Statements run in `order` (lowest
    first), after the alert and counter rows: a record that others reference (incidents) takes a lower order
    than the rows that reference it, so both can be written in the same batch."""

    sql: str
    order: int = 0


@dataclass
class Batch:
    """Everything one transaction writes. Rows are full states, so a batch can be retried or merged."""

    alerts: dict[str, AlertRow] = field(default_factory=dict)
    alert_touches: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    upserts: dict[Statement, dict[Hashable, tuple[Any, ...]]] = field(default_factory=dict)
    """Full-state rows by statement and record key: a newer row of the same key replaces the older."""
    appends: dict[Statement, list[tuple[Any, ...]]] = field(default_factory=dict)
    """Rows only ever inserted (audit events, journals): all are written, in order."""

    def __bool__(self) -> bool:
        return bool(
            self.alerts
            or self.alert_touches
            or self.counters
            or any(self.upserts.values())
            or any(self.appends.values())
        )

    def upsert(self, statement: Statement, key: Hashable, row: tuple[Any, ...]) -> None:
        self.upserts.setdefault(statement, {})[key] = row

    def append(self, statement: Statement, row: tuple[Any, ...]) -> None:
        self.appends.setdefault(statement, []).append(row)

    def absorb(self, newer: Batch) -> None:
        """Merge a newer batch in; its full-state rows win."""
        self.alerts.update(newer.alerts)
        for fp in newer.alerts:
            self.alert_touches.pop(fp, None)
        # Touches are written after whole rows, so a newer touch still applies on top of an older row.
        self.alert_touches.update(newer.alert_touches)
        self.counters.update(newer.counters)
        for statement, keyed in newer.upserts.items():
            self.upserts.setdefault(statement, {}).update(keyed)
        for statement, appended in newer.appends.items():
            self.appends.setdefault(statement, []).extend(appended)


_ALERTS_FROM_JSON = (
    f"INSERT OR REPLACE INTO alerts ({ALERT_COLUMNS}) SELECT "
    + ", ".join(f"value->>{i}" for i in range(len(ALERT_COLUMNS.split(","))))
    + " FROM json_each(?)"
)
_TOUCHES_FROM_JSON = (
    "UPDATE alerts SET last_seen = t.value->>0, times_seen = t.value->>1, sources = t.value->>2, "
    "expires_at = t.value->>3 FROM json_each(?) AS t WHERE alerts.fingerprint = t.value->>4"
)


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Database:
    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None

    fence_epoch: int | None = None
    """Single node: nothing to fence (the PostgreSQL backend checks it)."""

    @property
    def dialect(self) -> Dialect:
        return Dialect.SQLITE

    @property
    def description(self) -> str:
        return str(self.path)

    @property
    def primary(self) -> Sql:
        """The writer's connection for loads before the writer runs."""
        return SqliteSql(self.conn, owned=False)

    def reader(self, *, read_only: bool = True) -> Sql:
        return SqliteSql(connect(self.path, read_only=read_only))

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the database is not open")
        return self._conn

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {self.path.parent}: {exc.strerror}") from exc
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._check_identity(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Checkpoints run from their own connection off the commit path (see checkpoint()).
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA foreign_keys = ON")
            from daemon.storage.retention import enable_incremental_vacuum  # noqa: PLC0415 (imports Statement)

            enable_incremental_vacuum(conn)
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise IncompatibleStore(f"{self.path} is not a usable itsmd database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if app_id == 0 and tables:
            raise IncompatibleStore(
                f"{self.path} is an SQLite database of some other program; refusing to touch it "
                "(point --data-dir at an empty folder or at an itsmd data folder)"
            )
        if app_id not in (0, APPLICATION_ID):
            raise IncompatibleStore(f"{self.path} belongs to another program (application_id {app_id:#x})")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise IncompatibleStore(
                f"{self.path} has schema version {version}, newer than this itsmd ({LATEST}); "
                "run the newer itsmd or restore a backup"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            log.info("migrating database schema to version %d", version)
            # executescript commits on its own; the version bump is inside the same script so a crash
            # in between leaves the old version number and the migration runs again from scratch.
            conn.executescript(
                f"BEGIN; {sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version}; COMMIT;"
            )

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("final checkpoint failed: %s", exc)
            self._conn.close()
            self._conn = None

    def write(self, batch: Batch) -> None:
        """One transaction; on any error nothing of it is kept and the error is raised."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            # Alert rows go in as one JSON array and one statement: executemany would take the GIL back
            # after every row, and thousands of rows per commit then stall the event loop (GIL convoy).
            if batch.alerts:
                conn.execute(_ALERTS_FROM_JSON, (json.dumps(list(batch.alerts.values())),))
            if batch.alert_touches:
                conn.execute(_TOUCHES_FROM_JSON, (json.dumps(list(batch.alert_touches.values())),))
            if batch.counters:
                conn.executemany(
                    "INSERT INTO counters (name, labels, value) VALUES (?,?,?) "
                    "ON CONFLICT DO UPDATE SET value = excluded.value",
                    [(name, labels, value) for (name, labels), value in batch.counters.items()],
                )
            statements = {*batch.upserts, *batch.appends}
            for statement in sorted(statements, key=lambda st: st.order):
                if keyed := batch.upserts.get(statement):
                    conn.executemany(statement.sql, keyed.values())
                if appended := batch.appends.get(statement):
                    conn.executemany(statement.sql, appended)
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # disk full, read-only, locked: may pass
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"{self.path}: {exc}") from exc
            raise

    def checkpoint(self) -> None:
        """Copy the WAL into the database file from a separate connection (call from its own thread)."""
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
