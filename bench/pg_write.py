"""Rows per second of Backend.write for batches of 1,000 alert rows: SQLite vs PostgreSQL, side by side.

    .venv/bin/python -m bench.pg_write [--batches 20] [--rows 1000]

PostgreSQL: a database of its own on ITSMD_BENCH_PG_ADMIN_DSN (default: postgres on 127.0.0.1:5432),
dropped at the end. Each backend writes the same batches: the first inserts every row, the rest update them
all (the upsert's conflict path, as re-sent alerts do). PostgresBackend stages alert rows by COPY; the last
two columns measure the roads not taken, on a plain connection: executemany in pipeline mode, and one
JSON-array statement (what the SQLite backend does).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from daemon.model import Alert, AlertStatus, Source
from daemon.storage import alerts as alert_records
from daemon.storage.database import Batch, Database
from daemon.storage.postgres.backend import PostgresBackend

ADMIN_DSN = os.environ.get("ITSMD_BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
T0 = 1_800_000_000.0


def batches(count: int, size: int) -> list[Batch]:
    out = []
    for b in range(count):
        batch = Batch()
        for n in range(size):
            a = Alert(
                fingerprint=f"{n:016x}",
                labels={"alertname": "HighLatency", "instance": f"10.0.{n // 250}.{n % 250}:9100", "job": "node"},
                annotations={"summary": "p99 latency above 500ms", "runbook_url": "https://runbooks/latency"},
                status=AlertStatus.FIRING,
                starts_at=T0,
                ends_at=None,
                generator_url="http://prometheus:9090/graph?g0.expr=latency",
                sources=Source.ALERTMANAGER,
                first_seen=T0,
                last_seen=T0 + b,
                times_seen=b + 1,
                expires_at=T0 + b + 300,
            )
            batch.alerts[a.fingerprint] = alert_records.alert_row(a)
        out.append(batch)
    return out


def rate(write: Callable[[Batch], None], work: list[Batch]) -> float:
    started = time.perf_counter()
    for batch in work:
        write(batch)
    return sum(len(b.alerts) for b in work) / (time.perf_counter() - started)


def _upsert_values(placeholders: str) -> str:
    names = [c.strip() for c in alert_records.ALERT_COLUMNS.split(",")]
    return (
        f"INSERT INTO alerts ({alert_records.ALERT_COLUMNS}) {placeholders} "
        "ON CONFLICT (fingerprint) DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    )


def executemany_alerts(conn: psycopg.Connection[Any]) -> Callable[[Batch], None]:
    """The alert rows by executemany, which psycopg sends in pipeline mode (one round trip per batch)."""
    sql = _upsert_values(f"VALUES ({', '.join(['%s'] * len(alert_records.ALERT_COLUMNS.split(',')))})")

    def write(batch: Batch) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, list(batch.alerts.values()))

    return write


def json_alerts(conn: psycopg.Connection[Any]) -> Callable[[Batch], None]:
    """The alert rows as one JSON array and one INSERT ... SELECT FROM json_array_elements (SQLite's way)."""
    casts = ["", "", "", "", "::float8", "::float8", "", "::int8", "::float8", "::float8", "::int8", "::int8"]
    casts += ["::float8", "::int8"]
    fields = ", ".join(f"(r->>{i}){cast}" for i, cast in enumerate(casts))
    sql = _upsert_values(f"SELECT {fields} FROM json_array_elements(%s::json) AS r")  # noqa: S608

    def write(batch: Batch) -> None:
        with conn.transaction():
            conn.execute(sql, (json.dumps(list(batch.alerts.values())),))

    return write


def best(write: Callable[[Batch], None], work: list[Batch], rounds: int, reset: Callable[[], None]) -> float:
    """The best of `rounds` runs (the machine is shared: the best run is the least disturbed one)."""
    figures = []
    for _ in range(rounds):
        reset()
        figures.append(rate(write, work))
    return max(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = batches(args.batches, args.rows)

    lite: list[float] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = Database(Path(tmp) / "itsmd.db")
            sqlite.open()
            try:
                lite.append(rate(sqlite.write, work))
            finally:
                sqlite.close()

    name = f"itsmd_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        params = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
        params["dbname"] = name
        dsn = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})
        pg = PostgresBackend(dsn)
        pg.open()
        other = psycopg.connect(dsn, autocommit=True)
        try:

            def reset() -> None:
                other.execute("TRUNCATE alerts")

            postgres = best(pg.write, work, args.rounds, reset)
            many = best(executemany_alerts(other), work, args.rounds, reset)
            array = best(json_alerts(other), work, args.rounds, reset)
        finally:
            other.close()
            pg.close()
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(
        f"{args.batches} batches x {args.rows} alert rows (first inserts, then upserts), rows/s, "
        f"best of {args.rounds} rounds"
    )
    heads = ("SQLite Backend.write", "PostgreSQL Backend.write", "PG executemany", "PG JSON array")
    print("".join(f"{h:>26}" for h in heads))
    print("".join(f"{v:>26,.0f}" for v in (max(lite), postgres, many, array)))


if __name__ == "__main__":
    main()
