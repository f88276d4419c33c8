"""Copying an SQLite store into PostgreSQL (`itsmd migrate`), checked before it is committed.

The source is opened read-only in one read transaction, so every table comes from the same snapshot. The
target is opened once through the PostgreSQL backend (which creates or migrates its schema), then filled in
ONE transaction: every table of the SQLite schema (read from sqlite_master, so a table added by a later
migration is copied without a change here), parents before the tables that reference them, rows streamed
with COPY. Identity sequences are moved past the copied ids, the row counts and the audit chain are checked
on the copy, and only then is the transaction committed: a refusal or a failed check leaves the target as
it was.

A source whose schema is older than this build is refused rather than migrated here, so the source file is
never written: `itsmd run` once on it with this version migrates it. The daemon must be stopped while this
runs; a daemon holding the file from another process is detected (Linux) and refused.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import sqlite3
import struct
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from daemon.audit import archive
from daemon.audit import verify as audit_verify
from daemon.audit.chain import CHAIN_STARTED, Head, anchor_path, event_mac, load_key, read_anchor
from daemon.errors import StorageError
from daemon.storage import audit as audit_sql
from daemon.storage.postgres.sql import rewrite
from daemon.storage.schema import APPLICATION_ID, LATEST
from daemon.storage.sql import Backend, Dialect, Row, Sql
from daemon.storage.sqlite_sql import SqliteSql

DB_FILE = "itsmd.db"
BATCH_ROWS = 5000
"""Rows read from SQLite and handed to COPY at a time: the copy streams, memory stays flat."""
_SHM_DMS_BYTE = 128
"""SQLite's unix VFS: every connection to a WAL database holds a read lock on this byte of the -shm file."""


class MigrateError(StorageError):
    """The copy was refused or failed its checks; nothing was committed to the target."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    parents: frozenset[str]
    """Tables this one references by foreign key (copied first)."""


@dataclass
class Result:
    counts: list[tuple[str, int, int]] = field(default_factory=list)
    """Per table: rows in the source, rows in the copy."""
    audit: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def source_file(path: Path) -> Path:
    """The SQLite file: PATH itself, or the itsmd.db of a data folder."""
    return path / DB_FILE if path.is_dir() else path


def migrate(source: Path, target: Backend, dsn: str, key_file: Path) -> Result:
    """Copy `source` (an SQLite store) into `target`, the PostgreSQL backend of `dsn` (not open), checking the
    audit chain with `key_file` (the target config's audit key); MigrateError when refused. Returns the
    checks' result; the copy is committed only when they all pass."""
    db_path = source_file(source)
    if not db_path.is_file():
        raise MigrateError(f"no SQLite store at {db_path}")
    if held_by_another_process(db_path):
        raise MigrateError(f"{db_path} is open in another process: stop the daemon before migrating its store")
    with _open_source(db_path) as src:
        tables = source_tables(src)
        audited = src.execute("SELECT count(*) FROM audit_events").fetchone()[0] if "audit_events" in tables else 0
        key: bytes | None = None
        if audited:
            if not key_file.is_file():
                raise MigrateError(
                    f"the audit key {key_file} (audit.key_file of the target config) does not exist: copy the "
                    f"store's audit.key and audit.head there first, so the daemon can go on with its chain"
                )
            key = load_key(key_file)
            report = audit_verify.check(SqliteSql(src, owned=False), key, anchor_path(key_file))
            if not report.ok:
                found = "; ".join(str(f) for f in report.findings)
                raise MigrateError(f"the audit chain of {db_path} does not verify with {key_file}: {found}")
        # The backend creates or migrates the schema (and refuses a foreign or newer database).
        target.open()
        target.close()
        src.execute("BEGIN")  # one snapshot for every table
        try:
            with psycopg.connect(dsn, autocommit=False) as pg:
                result = _copy(src, pg, tables, key, anchor_path(key_file))
        except psycopg.Error as exc:
            raise MigrateError(f"copying into PostgreSQL failed, nothing was committed: {exc}") from exc
    return result


def held_by_another_process(db_path: Path) -> bool:
    """Whether another process has the WAL store open (a running daemon): it holds a read lock on the -shm
    file's DMS byte as long as its connection lives. F_GETLK only asks; it takes no lock. Linux layout of
    struct flock; elsewhere this finds nothing and the README's "stop the daemon first" is the rule."""
    shm = db_path.with_name(db_path.name + "-shm")
    try:
        fd = os.open(shm, os.O_RDONLY)
    except OSError:
        return False  # no -shm: nobody has the database open in WAL mode
    try:
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, _SHM_DMS_BYTE, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        l_type = struct.unpack("hhqqi", answer)[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(l_type != fcntl.F_UNLCK)


class _open_source:
    """The source read-only, refused unless it is an itsmd store of this build's schema version."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise MigrateError(f"cannot read {self._path}: {exc}") from exc
        if app_id != APPLICATION_ID:
            conn.close()
            raise MigrateError(f"{self._path} is not an itsmd store (application_id {app_id:#x})")
        if version != LATEST:
            conn.close()
            raise MigrateError(
                f"{self._path} has schema version {version}, this itsmd copies version {LATEST}: "
                + (
                    "run `itsmd run` once on it with this version (it migrates the file), stop it, then migrate"
                    if version < LATEST
                    else "use the itsmd that wrote it"
                )
            )
        self._conn = conn
        return conn

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.close()


def source_tables(conn: sqlite3.Connection) -> dict[str, Table]:
    """Every table of the SQLite schema, with its columns and the tables it references."""
    names = [
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
    ]
    tables = {}
    for name in names:
        columns = tuple(r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?) ORDER BY cid", (name,)))
        parents = frozenset(r[2] for r in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,)))
        tables[name] = Table(name, columns, parents - {name})
    return tables


def copy_order(tables: dict[str, Table]) -> list[Table]:
    """Parents before children; ties by name, so the order is the same every run."""
    done: dict[str, Table] = {}
    while len(done) < len(tables):
        ready = sorted(n for n, t in tables.items() if n not in done and t.parents <= done.keys() | {n})
        if not ready:
            cycle = sorted(set(tables) - done.keys())
            raise MigrateError(f"foreign keys form a cycle among {', '.join(cycle)}: no order to copy them in")
        for n in ready:
            done[n] = tables[n]
    return list(done.values())


def _copy(
    src: sqlite3.Connection, pg: psycopg.Connection[Any], tables: dict[str, Table], key: bytes | None, anchor: Path
) -> Result:
    result = Result()
    order = copy_order(tables)
    with pg.transaction() as tx:
        _check_target(pg, order)
        for table in order:
            _copy_table(src, pg, table)
        _reset_sequences(pg, order)
        for table in order:
            ident = pgsql.Identifier(table.name)
            want = src.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
            got = _pg_scalar(pg, pgsql.SQL("SELECT count(*) FROM {}").format(ident))
            result.counts.append((table.name, want, got))
            if want != got:
                result.problems.append(f"{table.name}: {want} rows in the source, {got} in the copy")
        if key is None:
            result.audit = "no audit events to verify"
        else:
            result.audit = _verify_copied_chain(pg, key, anchor, result.problems)
        if not result.ok:
            # Nothing of a copy that does not match is kept: the target stays empty for another try.
            raise psycopg.Rollback(tx)
    return result


def _check_target(pg: psycopg.Connection[Any], order: Sequence[Table]) -> None:
    found: dict[str, set[str]] = {}
    for table, column in pg.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        found.setdefault(table, set()).add(column)
    for table in order:
        if table.name not in found:
            raise MigrateError(f"the PostgreSQL schema has no table {table.name}: this build cannot copy it")
        if missing := [c for c in table.columns if c not in found[table.name]]:
            raise MigrateError(f"the PostgreSQL table {table.name} lacks the column(s) {', '.join(missing)}")
    # No daemon may write while the copy runs, and a second migrate waits for the first and then refuses.
    names = pgsql.SQL(", ").join(pgsql.Identifier(t.name) for t in order)
    pg.execute(pgsql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(names))
    holding = [
        t.name
        for t in order
        if _pg_scalar(pg, pgsql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(pgsql.Identifier(t.name)))
    ]
    if holding:
        raise MigrateError(
            f"the target database already holds records (in {', '.join(holding)}): migrate only into an empty "
            "itsmd database; nothing was changed"
        )


def _copy_table(src: sqlite3.Connection, pg: psycopg.Connection[Any], table: Table) -> None:
    columns = pgsql.SQL(", ").join(pgsql.Identifier(c) for c in table.columns)
    listed = ", ".join(f'"{c}"' for c in table.columns)
    cursor = src.execute(f'SELECT {listed} FROM "{table.name}"')
    with pg.cursor() as cur:
        copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN").format(pgsql.Identifier(table.name), columns)
        with cur.copy(copy_sql) as copy:
            while batch := cursor.fetchmany(BATCH_ROWS):
                for row in batch:
                    copy.write_row(row)


def _reset_sequences(pg: psycopg.Connection[Any], order: Sequence[Table]) -> None:
    """COPY wrote the ids; the next id the database hands out must come after the highest of them."""
    for table in order:
        for column in table.columns:
            sequence = _pg_scalar(pg, "SELECT pg_get_serial_sequence(%s, %s)", (table.name, column))
            if sequence is None:
                continue
            highest = _pg_scalar(
                pg,
                pgsql.SQL("SELECT max({}) FROM {}").format(pgsql.Identifier(column), pgsql.Identifier(table.name)),
            )
            if highest is None:
                pg.execute("SELECT setval(%s, 1, false)", (sequence,))
            else:
                pg.execute("SELECT setval(%s, %s)", (sequence, highest))


def _verify_copied_chain(pg: psycopg.Connection[Any], key: bytes, anchor_file: Path, problems: list[str]) -> str:
    """The chain on the copy: the events sealed at its start unchanged, every mac recomputed from the copied
    columns (so a value PostgreSQL stored differently shows), sequence numbers contiguous, reaching the anchor.
    The source's chain was checked in full (triggers too) by daemon.audit.verify before the copy."""
    conn = _QmarkConnection(pg)
    events = _pg_scalar(pg, "SELECT count(*) FROM audit_events")
    head = audit_verify.stored_head(conn)
    if head is None:
        return f"{events} audit events, no chain started"
    cuts = archive.cuts(conn)
    # After an archive cut the chain's start and the events it sealed are in the archive file: the stored
    # chain follows the newest cut, as `itsmd audit verify` checks it.
    if not cuts:
        _check_copied_start(pg, conn, problems)
    prev, expected = (cuts[-1].through_mac, cuts[-1].through_seq + 1) if cuts else ("", 1)
    for _id, seq, at, actor, record_type, record_id, action, before, after, mac in _chained(pg):
        if seq != expected:
            problems.append(f"audit: the copy's chain skips from seq {expected - 1} to {seq}")
            break
        want = event_mac(key, (seq, at, actor, record_type, record_id, action, before, after), prev)
        if not hmac.compare_digest(want, mac or ""):
            problems.append(f"audit: event seq {seq}'s mac does not match in the copy")
            break
        prev, expected = mac, seq + 1
    anchored: Head | None = read_anchor(anchor_file)
    if anchored is not None and (anchored.seq > head.seq or _mac_of(pg, anchored.seq) != anchored.mac):
        problems.append(f"audit: the copy does not reach the anchor {anchor_file} (seq {anchored.seq})")
    verdict = "verifies" if not any(p.startswith("audit:") for p in problems) else "FAILS"
    return f"{events} audit events, chain to seq {head.seq} {verdict} on the copy"


def _check_copied_start(pg: psycopg.Connection[Any], conn: Sql, problems: list[str]) -> None:
    """Seq 1 starts the chain and the events it sealed are unchanged on the copy."""
    start = pg.execute("SELECT record_type, record_id, action, after FROM audit_events WHERE seq = 1").fetchone()
    if start is not None and tuple(start[:3]) == CHAIN_STARTED:
        try:
            sealed = json.loads(start[3])
            through = sealed["unchained_through_id"]
            sealed_as = (sealed["unchained_events"], sealed["unchained_sha256"])
        except (TypeError, ValueError, KeyError):
            problems.append("audit: the copy's chain start does not say what it sealed")
        else:
            if audit_verify.unchained_digest(conn, through) != sealed_as:
                problems.append("audit: the events sealed when the chain started differ in the copy")
    else:
        problems.append("audit: the copy's event seq 1 does not start the chain")


def _chained(pg: psycopg.Connection[Any]) -> Iterator[tuple[Any, ...]]:
    yield from pg.execute(f"SELECT {audit_sql.EVENT_COLUMNS} FROM audit_events WHERE seq IS NOT NULL ORDER BY seq, id")


def _mac_of(pg: psycopg.Connection[Any], seq: int) -> str | None:
    r = pg.execute("SELECT mac FROM audit_events WHERE seq = %s", (seq,)).fetchone()
    return None if r is None else str(r[0])


class _QmarkConnection:
    """An `Sql` on the migration's own transaction (the copy is verified before it commits, so the reads must
    see it): `?` placeholders on psycopg, rows by name."""

    def __init__(self, pg: psycopg.Connection[Any]) -> None:
        self._pg = pg

    @property
    def dialect(self) -> Dialect:
        return Dialect.POSTGRES

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._pg.cursor(row_factory=dict_row) as cur:
            cur.execute(rewrite(sql), params)
            return list(cur.fetchall()) if cur.description is not None else []

    def pages(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Generator[list[Row], None, None]:
        with self._pg.cursor(row_factory=dict_row) as cur:
            cur.execute(rewrite(sql), params)
            while cur.description is not None and (chunk := cur.fetchmany(size)):
                yield list(chunk)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        r = self.one(sql, params)
        return None if r is None else next(iter(r.values()), None)

    def close(self) -> None:
        """The migration owns the connection."""


def _pg_scalar(pg: psycopg.Connection[Any], query: Any, params: Sequence[Any] = ()) -> Any:
    r = pg.execute(query, params).fetchone()
    return None if r is None else r[0]


def print_result(result: Result, out: TextIO) -> None:
    width = max([len("table"), *(len(n) for n, _, _ in result.counts)])
    out.write(f"{'table':<{width}}  {'source':>9}  {'copied':>9}\n")
    for name, want, got in result.counts:
        mark = "" if want == got else "  MISMATCH"
        out.write(f"{name:<{width}}  {want:>9}  {got:>9}{mark}\n")
    out.write(f"audit: {result.audit}\n")
    for problem in result.problems:
        out.write(f"problem: {problem}\n")
