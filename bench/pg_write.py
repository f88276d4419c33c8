"""Rows per second of Backend.write for batches of 1,000 alert rows: SQLite vs PostgreSQL, side by side.

    .venv/bin/python -m bench.pg_write [--batches 20] [--rows 1000]

PostgreSQL: a database of its own on ITSMD_BENCH_PG_ADMIN_DSN (default: postgres on 127.0.0.1:5432),
dropped at the end. Each backend writes the same batches: the first inserts every row, the rest update them
all (the upsert's conflict path, as re-sent alerts do). A third column measures the road not taken for the
PostgreSQL alert rows, executemany in pipeline mode, on the same connection, for comparison with the one
JSON-array statement PostgresBackend uses.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from daemon.model import Alert, AlertStatus, Source
from daemon.storage import rows
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
            batch.alerts[a.fingerprint] = rows.alert_row(a)
        out.append(batch)
    return out


def rate(write: Callable[[Batch], None], work: list[Batch]) -> float:
    started = time.perf_counter()
    for batch in work:
        write(batch)
    return sum(len(b.alerts) for b in work) / (time.perf_counter() - started)


def executemany_alerts(backend: PostgresBackend) -> Callable[[Batch], None]:
    names = [c.strip() for c in rows.ALERT_COLUMNS.split(",")]
    sql = (
        f"INSERT INTO alerts ({rows.ALERT_COLUMNS}) VALUES ({', '.join(['%s'] * len(names))}) "  # noqa: S608
        "ON CONFLICT (fingerprint) DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    )
    conn = backend.primary.connection  # type: ignore[attr-defined]

    def write(batch: Batch) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, list(batch.alerts.values()))

    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    work = batches(args.batches, args.rows)

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Database(Path(tmp) / "itsmd.db")
        sqlite.open()
        try:
            lite = rate(sqlite.write, work)
        finally:
            sqlite.close()

    name = f"itsmd_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        params = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
        params["dbname"] = name
        pg = PostgresBackend(psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}))
        pg.open()
        try:
            postgres = rate(pg.write, work)
            pg.primary.connection.execute("TRUNCATE alerts")  # type: ignore[attr-defined]
            many = rate(executemany_alerts(pg), work)
        finally:
            pg.close()
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(f"{args.batches} batches x {args.rows} alert rows (first inserts, then upserts), rows/s of Backend.write")
    print(f"{'SQLite (WAL, normal)':>24} {'PostgreSQL (JSON array)':>26} {'PostgreSQL executemany':>24}")
    print(f"{lite:>24,.0f} {postgres:>26,.0f} {many:>24,.0f}")


if __name__ == "__main__":
    main()
