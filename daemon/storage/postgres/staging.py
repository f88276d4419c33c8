"""Many rows of one record statement by COPY: into a session-local staging table, then one INSERT from it.

A record module's statement is `INSERT INTO t (cols) VALUES (?, ...) [ON CONFLICT ...]`, written for one row.
executemany sends it once per row (pipelined, but a Bind and an Execute each, and psycopg's per-row work in
Python on the writer thread, which is GIL time taken from the event loop). For a batch with many rows of one
statement the backend instead COPYs them into a temporary table (the statement's columns, typed as in `t`, and
an ordinal) and runs one `INSERT INTO t (cols) SELECT cols FROM the stage ORDER BY ordinal` with the statement's
own conflict clause. What executemany would have left is kept:

- rows are inserted in the order they were given (identity columns, the audit chain and timelines rely on it);
- a `DO UPDATE` statement is staged only when its rows have distinct conflict keys (`unique_keys`): one command
  cannot touch a row twice, and executemany's second row of a key updates only the columns the statement
  sets, which no single SELECT reproduces. Batches key upserts by record, so in practice they are distinct.

A statement of another shape (a `SELECT` with a `WHERE`, parameters outside `VALUES`) is not staged and runs as
before; so does a statement with few rows, where COPY's own round trips cost more than they save.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_ROWS = 16
"""Fewer rows than this go by executemany."""

_INSERT = re.compile(
    r"INSERT INTO (?P<table>\w+) \((?P<cols>[\w\s,]+)\)\s+VALUES\s*\((?P<marks>[?\s,]+)\)(?P<rest>[^?;]*)",
    re.S,
)
_CONFLICT = re.compile(r"ON CONFLICT(?: \((?P<key>[\w\s,]+)\))? DO (?P<action>UPDATE|NOTHING)\b", re.S)


@dataclass(frozen=True)
class Staged:
    stage: str
    create: tuple[str, ...]
    """Run once per session, before the first COPY into the stage."""
    copy: str
    insert: str
    key_columns: tuple[int, ...] = ()
    """For `DO UPDATE`: the positions of the conflict key in a row, which must not repeat in one COPY."""

    def unique_keys(self, rows: Iterable[Sequence[object]]) -> bool:
        if not self.key_columns:
            return True
        seen: set[tuple[object, ...]] = set()
        for row in rows:
            key = tuple(row[i] for i in self.key_columns)
            if key in seen:
                return False
            seen.add(key)
        return True


@functools.cache
def staged(sql: str) -> Staged | None:
    """How `sql` is written from a staging table, or None when it has a shape this does not handle."""
    m = _INSERT.fullmatch(sql.strip())
    if m is None:
        return None
    cols = [c.strip() for c in m["cols"].split(",")]
    if m["marks"].count("?") != len(cols) or "stage_n" in cols:
        return None
    table, rest = m["table"], m["rest"].strip()
    listed = ", ".join(cols)
    # Named by table and columns: two statements that write other columns of one table get a stage each.
    stage = f"stage_{table}_{zlib.crc32(listed.encode()):08x}"
    select = f"SELECT {listed} FROM pg_temp.{stage} ORDER BY stage_n"
    key_columns: tuple[int, ...] = ()
    if rest:
        conflict = _CONFLICT.match(rest)
        if conflict is None:
            return None
        if conflict["action"] == "UPDATE":
            if conflict["key"] is None:
                return None
            key = [k.strip() for k in conflict["key"].split(",")]
            if not set(key) <= set(cols):
                return None
            key_columns = tuple(cols.index(k) for k in key)
    return Staged(
        stage=stage,
        create=(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT {listed} FROM {table} "
            "WITH NO DATA",
            f"ALTER TABLE pg_temp.{stage} ADD COLUMN IF NOT EXISTS stage_n bigint GENERATED ALWAYS AS IDENTITY",
        ),
        copy=f"COPY pg_temp.{stage} ({listed}) FROM STDIN",
        insert=f"INSERT INTO {table} ({listed}) {select} {rest}".rstrip(),
        key_columns=key_columns,
    )
