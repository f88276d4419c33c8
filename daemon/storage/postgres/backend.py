"""The PostgreSQL `Backend`: one connection for the writer, a pool for readers, migrations at open.

The writer's connection is autocommit with explicit BEGIN/COMMIT, so the backend knows whether a failure
came before COMMIT was sent (nothing of the batch happened: reconnect and write it again at once) or
during it (unknown outcome: raise, and the writer's retry of the same full-state rows settles it).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from daemon.errors import Fenced, StorageError
from daemon.storage import alerts as alert_records
from daemon.storage.database import Batch
from daemon.storage.postgres import schema, staging
from daemon.storage.postgres.sql import PgConnection, PgSql, driver_error, nul_free_text, rewrite
from daemon.storage.sql import Dialect, Sql

log = logging.getLogger(__name__)

_ALERT_NAMES = [c.strip() for c in alert_records.ALERT_COLUMNS.split(",")]

# Thousands of alert rows per commit go in by COPY into a session-local staging table and one upsert from it.
# Measured (bench/pg_write.py, docs/storage.md): faster than executemany in pipeline mode and than one
# JSON-array statement, and the least client CPU of the three, which is GIL time taken from the event loop.
_STAGE_ALERTS = "CREATE TEMP TABLE IF NOT EXISTS alerts_in (LIKE alerts) ON COMMIT DELETE ROWS"
_COPY_ALERTS = f"COPY pg_temp.alerts_in ({alert_records.ALERT_COLUMNS}) FROM STDIN"
_ALERTS_FROM_STAGE = (
    f"INSERT INTO alerts ({alert_records.ALERT_COLUMNS}) SELECT {alert_records.ALERT_COLUMNS} FROM pg_temp.alerts_in "
    "ON CONFLICT (fingerprint) DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in _ALERT_NAMES[1:])
)
_TOUCHES_FROM_JSON = (
    "UPDATE alerts SET last_seen = (t->>0)::float8, times_seen = (t->>1)::int8, sources = (t->>2)::int8, "
    "expires_at = (t->>3)::float8 FROM json_array_elements(%s::json) AS t WHERE alerts.fingerprint = t->>4"
)
_COUNTERS = (
    "INSERT INTO counters (name, labels, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (name, labels) DO UPDATE SET value = excluded.value"
)
_FENCE = "SELECT epoch FROM leader_lease WHERE id = 1 FOR SHARE"
_IDLE_LIMIT = "SELECT set_config('idle_in_transaction_session_timeout', %s, false)"


class _LostBeforeCommit(Exception):
    """The connection broke before COMMIT was sent: the server rolled the batch back."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PostgresBackend:
    fence_epoch: int | None = None
    """The leadership epoch this replica writes under; None: a single node, nothing to check."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_min: int = 1,
        pool_max: int = 4,
        connect_timeout: float = 5.0,
        idle_limit: float | None = None,
    ) -> None:
        """`idle_limit`: how long the server lets the writer's session sit inside a transaction waiting for its
        next statement before ending it (the replica's lease: a frozen leader's fenced transaction must not
        hold the lease row past the lease); None: the server's setting."""
        self._dsn = dsn
        self._timeout = connect_timeout
        self._idle_limit = idle_limit
        self._pool_min = pool_min
        self._pool_max = pool_max
        try:
            self._params: dict[str, Any] | None = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            self._params = None
        self._password = str((self._params or {}).get("password") or "")
        self._conn: PgConnection | None = None
        self._stages: set[str] = set()
        """Staging tables made on the writer's current session (temporary tables go with it)."""
        self._pool: ConnectionPool[PgConnection] | None = None

    @property
    def dialect(self) -> Dialect:
        return Dialect.POSTGRES

    @property
    def description(self) -> str:
        if self._params is None:
            return "PostgreSQL (storage DSN not understood)"
        p = self._params
        user = f"{p['user']}@" if p.get("user") else ""
        host = p.get("host") or p.get("hostaddr") or "local socket"
        port = f":{p['port']}" if p.get("port") else ""
        return f"postgresql://{user}{host}{port}/{p.get('dbname') or p.get('user') or ''}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if len(self._password) >= 3 else text

    def _kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": max(1, math.ceil(self._timeout)),
        }
        if self._params is not None and "application_name" not in self._params:
            extra["application_name"] = "itsmd"
        return extra

    def _connect(self) -> PgConnection:
        conn: PgConnection = psycopg.connect(self._dsn, **self._kwargs())
        nul_free_text(conn)
        return conn

    def _connect_writer(self) -> PgConnection:
        conn = self._connect()
        self._stages = set()
        try:
            self._prepare_writer(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare_writer(self, conn: PgConnection) -> None:
        conn.execute(_STAGE_ALERTS)
        if self._idle_limit is not None:
            # After the migration (which may rightly take long), on the writer only. No statement_timeout: it
            # does not end a session waiting for a stopped client's COPY data or pipeline (docs/storage.md).
            conn.execute(_IDLE_LIMIT, (f"{max(1, math.ceil(self._idle_limit * 1000))}ms",))

    def open(self) -> None:
        if self._params is None:
            raise StorageError("storage DSN is not a libpq connection string or postgresql:// URI")
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            reason = self._scrub(" ".join(str(exc).split()))
            raise StorageError(f"cannot connect to PostgreSQL {self.description}: {reason}") from exc
        try:
            schema.migrate(conn, self.description)
            self._prepare_writer(conn)
        except psycopg.Error as exc:
            conn.close()
            raise driver_error(exc, f"{self.description}: migrating", self._scrub) from exc
        except BaseException:
            conn.close()
            raise
        pool: ConnectionPool[PgConnection] = ConnectionPool(
            self._dsn,
            min_size=self._pool_min,
            max_size=self._pool_max,
            kwargs=self._kwargs(),
            configure=_read_only,
            check=ConnectionPool.check_connection,
            timeout=self._timeout,
            name="itsmd-readers",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=self._timeout)
        except psycopg.Error as exc:
            pool.close()
            conn.close()
            raise driver_error(exc, f"{self.description}: reader pool", self._scrub) from exc
        self._conn = conn
        self._pool = pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def primary(self) -> Sql:
        return PgSql(self._writer(), where=self.description, release=lambda _: None)

    def reader(self, *, read_only: bool = True) -> Sql:
        if self._pool is None:
            raise StorageError("the database is not open")
        try:
            conn = self._pool.getconn()
            if not read_only:
                conn.execute("SET default_transaction_read_only = off")
        except psycopg.Error as exc:
            raise driver_error(exc, f"{self.description}: reader", self._scrub) from exc
        return PgSql(conn, where=self.description, release=self._release if read_only else self._release_writable)

    def _release(self, conn: PgConnection) -> None:
        if self._pool is not None:
            self._pool.putconn(conn)
        else:
            conn.close()

    def _release_writable(self, conn: PgConnection) -> None:
        try:
            conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error:
            conn.close()  # the pool drops a closed connection and opens another
        self._release(conn)

    def checkpoint(self) -> None:
        """Nothing to do: the server checkpoints on its own."""

    def _writer(self) -> PgConnection:
        """The writer's connection, opened again if the last one broke (server restart, terminated)."""
        if self._pool is None:
            raise StorageError("the database is not open")
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            try:
                conn = self._conn = self._connect_writer()
            except psycopg.Error as exc:
                raise driver_error(exc, f"{self.description}: reconnecting", self._scrub) from exc
            log.info("writer reconnected to %s", self.description)
        return conn

    def write(self, batch: Batch) -> None:
        """One transaction; on any error nothing of it is kept and the error is raised (StoreUnavailable
        for driver errors, Fenced when another replica took over)."""
        try:
            self._transaction(self._writer(), batch)
        except _LostBeforeCommit as lost:
            log.warning("lost the connection to %s before commit (%s); writing the batch again", self.description, lost)
            try:
                self._transaction(self._writer(), batch)
            except _LostBeforeCommit as again:
                raise driver_error(again.cause, self.description, self._scrub) from again.cause

    def _staging(self, conn: PgConnection, batch: Batch) -> dict[str, staging.Staged]:
        """The statements of `batch` written by COPY (by their SQL), their staging tables made first, outside the
        transaction: made inside one, a rollback would take the table and leave it marked as made."""
        out: dict[str, staging.Staged] = {}
        for statement in {*batch.upserts, *batch.appends}:
            keyed, appended = batch.upserts.get(statement, {}), batch.appends.get(statement, [])
            if len(keyed) + len(appended) < staging.MIN_ROWS:
                continue
            plan = staging.staged(statement.sql)
            if plan is None or not plan.unique_keys(itertools.chain(keyed.values(), appended)):
                continue
            if plan.stage not in self._stages:
                for sql in plan.create:
                    conn.execute(sql)
                self._stages.add(plan.stage)
            out[statement.sql] = plan
        return out

    def _transaction(self, conn: PgConnection, batch: Batch) -> None:
        committing = False
        try:
            staged = self._staging(conn, batch)
            conn.execute("BEGIN")
            if self.fence_epoch is not None:
                found = conn.execute(_FENCE).fetchone()
                epoch = None if found is None else found["epoch"]
                if epoch != self.fence_epoch:
                    raise Fenced(
                        f"{self.description}: the leadership epoch is {epoch}, this replica writes under "
                        f"{self.fence_epoch}: another replica leads, nothing written"
                    )
            with conn.cursor() as cur:
                if batch.alerts:
                    with cur.copy(_COPY_ALERTS) as copy:
                        for row in batch.alerts.values():
                            copy.write_row(row)
                    cur.execute(_ALERTS_FROM_STAGE)
                if batch.alert_touches:
                    cur.execute(_TOUCHES_FROM_JSON, (json.dumps(list(batch.alert_touches.values())),))
                if batch.counters:
                    cur.executemany(_COUNTERS, [(n, labels, v) for (n, labels), v in batch.counters.items()])
                for statement in sorted({*batch.upserts, *batch.appends}, key=lambda st: st.order):
                    keyed, appended = batch.upserts.get(statement), batch.appends.get(statement)
                    plan = staged.get(statement.sql)
                    if plan is not None:
                        # Upserts before appends, as below: one COPY holds both, in that order.
                        with cur.copy(plan.copy) as copy:
                            for row in (keyed or {}).values():
                                copy.write_row(row)
                            for row in appended or ():
                                copy.write_row(row)
                        cur.execute(plan.insert)
                        continue
                    sql = rewrite(statement.sql)
                    if keyed:
                        cur.executemany(sql, list(keyed.values()))
                    if appended:
                        cur.executemany(sql, appended)
            committing = True
            conn.execute("COMMIT")
        except BaseException as exc:
            alive = not conn.closed and not conn.broken
            if alive:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
                    alive = False
            if isinstance(exc, psycopg.Error):
                if not alive and not committing:
                    raise _LostBeforeCommit(exc) from exc
                raise driver_error(exc, self.description, self._scrub) from exc
            raise


def _read_only(conn: PgConnection) -> None:
    # Readers cannot write by accident; reader(read_only=False) lifts it for the one checkout.
    conn.execute("SET default_transaction_read_only = on")
    nul_free_text(conn)  # looking for a text with NUL finds it as it was written
