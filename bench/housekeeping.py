"""Ingest latency while housekeeping prunes: p99 of POST /api/v2/alerts with and without a prune running.

    .venv/bin/python -m bench.housekeeping                      # 300k prunable alerts, 10 s per phase
    .venv/bin/python -m bench.housekeeping --alerts 50000 --duration 3

One daemon in this process (the real app on a real SQLite file in a temp folder, default retention), its
store preloaded with `--alerts` resolved alerts that ended 60 days ago (due for pruning) and closed incidents
of four years ago. Then two phases of the same load (batches of 50 re-sent firing alerts, `--concurrency`
requests in flight): first with nothing else running, then while one housekeeping run deletes the preloaded
rows in its batches. Prints p50/p99/max per phase side by side, the ratio of the p99s against the issue's
target (at most 2x), and how many rows the prune removed during the phase. The client shares the event loop
with the daemon, so absolute figures are below a separate load generator's; the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from daemon.app import HOUSEKEEPING, create_app
from daemon.config import load_config

DAY = 86400.0
TARGET = 2.0


def _preload(db: Path, alerts: int, incidents: int) -> None:
    now = time.time()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    ended = now - 60 * DAY
    conn.executemany(
        "INSERT INTO alerts (fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
        "first_seen, last_seen, times_seen, state_changes, expires_at, incident_id) "
        "VALUES (?, ?, '{}', 'resolved', ?, ?, '', 1, ?, ?, 1, 1, NULL, NULL)",
        (
            (f"old{i:08d}", json.dumps({"alertname": "Old", "instance": str(i)}), ended - 60, ended, ended - 60, ended)
            for i in range(alerts)
        ),
    )
    resolved = now - 4 * 365 * DAY
    conn.executemany(
        "INSERT INTO incidents (id, key, service, title, status, opened_at, resolved_at, reopen_count) "
        "VALUES (?, 'k', 'default', 't', 'closed', ?, ?, 0)",
        ((1_000_000 + i, resolved - 600, resolved) for i in range(incidents)),
    )
    conn.execute("COMMIT")
    conn.close()


def _body(batch: int) -> bytes:
    now = time.time()
    alerts = [
        {
            "labels": {"alertname": f"Live{i % 50}", "service": f"svc{i % 20}", "instance": str(i)},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 300)),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 240)),
        }
        for i in range(batch)
    ]
    return json.dumps(alerts).encode()


async def _load(client: TestClient[Any, Any], seconds: float, concurrency: int, batch: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    body = _body(batch)

    async def one() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            async with client.post("/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"ingest answered {resp.status}")
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies


def _row(name: str, lat: list[float], extra: str = "") -> str:
    ms = sorted(x * 1000 for x in lat)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:<18} {len(ms):>8} {statistics.median(ms):>8.2f} {p99:>8.2f} {ms[-1]:>8.2f}  {extra}"


def _p99(lat: list[float]) -> float:
    ms = sorted(lat)
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="itsmd-bench-hk-") as tmp:
        folder = Path(tmp)
        config = folder / "itsmd.yaml"
        # Housekeeping runs only when this benchmark starts it.
        config.write_text("retention:\n  interval: 100d\n", encoding="utf-8")
        data = folder / "data"
        # Create the store (migrations) with one short start, then fill it while nothing runs.
        app = create_app(load_config(config, data_dir=data))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        await client.close()
        _preload(data / "itsmd.db", args.alerts, args.alerts // 10)

        app = create_app(load_config(config, data_dir=data))
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            await _load(client, 1.0, args.concurrency, args.batch)  # warm-up
            quiet = await _load(client, args.duration, args.concurrency, args.batch)
            job = app[HOUSEKEEPING]
            before = dict(job.deleted)
            prune = asyncio.create_task(job.run())
            await asyncio.sleep(0.2)  # the rollups and the first counts, so the phase measures deletes
            during = await _load(client, args.duration, args.concurrency, args.batch)
            removed = {k: v - before[k] for k, v in job.deleted.items() if v != before[k]}
            still = not prune.done()
            await prune
        finally:
            await client.close()
    print(f"{'phase':<18} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(_row("no prune", quiet))
    note = f"removed during the phase: {removed}" + ("" if still else " (the prune ended inside the phase)")
    print(_row("prune running", during, note))
    ratio = _p99(during) / _p99(quiet)
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"p99 ratio {ratio:.2f} (target <= {TARGET:.0f}x): {verdict}")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=300_000, help="prunable resolved alerts preloaded")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--batch", type=int, default=50, help="alerts per request")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
