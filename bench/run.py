"""Drive the same Alertmanager v2 payloads at itsmd (SQLite and PostgreSQL), a bare-aiohttp ceiling and the
real Alertmanager.

    .venv/bin/python -m bench.run [--duration S] [--connections N] [--only WORKLOAD] [--json FILE]

For each workload and each server: start the server (fresh folder; a fresh PostgreSQL database for the itsmd-pg
targets), wait until it serves the role measured (``itsmd_leader`` on /metrics, replicas only) and for
``GET /-/ready`` = 200, warm up (not counted), run wrk for ``--duration`` seconds, read the server's CPU time and
peak RSS, stop it. Every subprocess, temp folder and database is removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from bench import pg, report, workloads
from bench.report import CaseResult
from bench.server import (
    ServerError,
    ServerProcess,
    cpu_seconds,
    cpu_seconds_of,
    free_port,
    machine_busy_seconds,
    peak_rss_bytes,
    scrape_counter,
)
from bench.targets import ALERTMANAGER_BIN, REPO_ROOT, TARGET_NAMES, TARGETS, Target
from bench.wrk import WRK_BIN, WrkError, run_wrk


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _names(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    if not values:
        return list(allowed)
    chosen = [v.strip() for value in values for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return [a for a in allowed if a in chosen]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per case (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per case, not counted (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections, one wrk thread (default 32)")
    p.add_argument(
        "--only",
        action="append",
        metavar="WORKLOAD",
        help=f"run only these ({', '.join(workloads.WORKLOAD_NAMES)})",
    )
    p.add_argument("--targets", action="append", metavar="TARGET", help=f"only these ({', '.join(TARGET_NAMES)})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE")
    p.add_argument("--seed", type=int, default=1, help="seed for the alert pools and wrk's choices (default 1)")
    p.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for /-/ready (default 60)")
    args = p.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.connections < 1:
        p.error("--duration must be >= 1, --warmup >= 0, --connections >= 1")
    return args


def _start(server: ServerProcess, target: Target, leader: int | None, timeout: float) -> float:
    """Wait until the server serves the role the case measures (replicas), then until ready; the seconds."""
    took = 0.0
    if leader is not None:
        took += server.wait_metric("itsmd_leader", leader, timeout)
    return took + server.wait_ready(target.ready_path, timeout)


def _inbox_applied(leader: ServerProcess, metric: str, timeout: float = 30.0) -> float | None:
    """The leader's received-alerts counter once its inbox consumer has caught up with what the follower took
    (nothing pending and the counter still for half a second), or its value when ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    last = scrape_counter(leader.url("/metrics"), metric)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = scrape_counter(leader.url("/metrics"), metric)
        if now == last and scrape_counter(leader.url("/metrics"), "itsmd_inbox_pending") == 0:
            return now
        last = now
    return last


def run_case(
    target: Target, workload: workloads.Workload, pool_file: Path, workdir: Path, args: argparse.Namespace
) -> CaseResult:
    why_not = target.unavailable()
    if why_not:
        _log(f"{workload.name} / {target.name}: skipped ({why_not})")
        return CaseResult(workload.name, target.name, "skipped", why_not)
    workdir.mkdir()
    try:
        if target.prepare is not None:
            target.prepare(workdir)
        with contextlib.ExitStack() as stack:
            companion = None
            if target.companion is not None:
                cport = free_port()
                cargv = target.companion(workdir, cport)
                log_path = workdir / "leader.log"
                companion = stack.enter_context(
                    ServerProcess(f"{target.name} leader", cargv, port=cport, log_path=log_path, cwd=REPO_ROOT)
                )
                took = _start(companion, target, 1, args.ready_timeout)
                _log(f"{workload.name} / {target.name}: leader ready in {took:.2f} s (pid {companion.pid})")
            port = free_port()
            argv = target.command(workdir, port)
            server = stack.enter_context(
                ServerProcess(target.name, argv, port=port, log_path=workdir / "server.log", cwd=REPO_ROOT)
            )
            database = pg.database_of(workdir)
            return _measure(target, workload, pool_file, args, server=server, companion=companion, database=database)
    except (ServerError, OSError, psycopg.Error) as exc:  # before the measured server ran: no figures
        _log(f"{workload.name} / {target.name}: FAILED: {exc}")
        return CaseResult(workload.name, target.name, "failed", str(exc))
    finally:
        if target.cleanup is not None:
            try:
                target.cleanup(workdir)
            except (OSError, psycopg.Error) as exc:
                _log(f"{workload.name} / {target.name}: cleanup failed: {exc}")


def _measure(
    target: Target,
    workload: workloads.Workload,
    pool_file: Path,
    args: argparse.Namespace,
    *,
    server: ServerProcess,
    companion: ServerProcess | None,
    database: str | None,
) -> CaseResult:
    try:
        took = _start(server, target, target.leader, args.ready_timeout)
        _log(f"{workload.name} / {target.name}: ready in {took:.2f} s (pid {server.pid}, port {server.port})")
        url = server.url(target.post_path)
        sent = 0
        if args.warmup >= 1:
            warm = run_wrk(url, pool_file, duration_s=args.warmup, connections=args.connections,
                           change_fraction=0.0, tag="warm", seed=args.seed)  # fmt: skip
            sent += warm.sent_alerts
        pids = [server.pid] + ([companion.pid] if companion is not None else [])
        # The sessions open when the run starts (the daemon's pools and listeners hold theirs for the case).
        pg_before = cpu_seconds_of(pg.session_pids(database)) if database is not None else {}
        cpu_before, busy_before = sum(cpu_seconds(p) for p in pids), machine_busy_seconds()
        result = run_wrk(url, pool_file, duration_s=args.duration, connections=args.connections,
                         change_fraction=workload.change_fraction, tag="run", seed=args.seed)  # fmt: skip
        for proc in (server, companion):
            if proc is not None and not proc.alive():
                raise ServerError(f"{proc.name} died during the run:\n{proc.log_tail()}")
        cpu_used = sum(cpu_seconds(p) for p in pids) - cpu_before
        pg_after = cpu_seconds_of(list(pg_before))
        pg_cpu = sum(pg_after[p] - pg_before[p] for p in pg_after) if database is not None else None
        other_cpu = machine_busy_seconds() - busy_before - cpu_used - result.wrk_cpu_s - (pg_cpu or 0.0)
        rss = peak_rss_bytes(server.pid)
        sent += result.sent_alerts
        counted = None
        if target.received_metric and companion is not None:
            counted = _inbox_applied(companion, target.received_metric)
        elif target.received_metric:
            counted = scrape_counter(server.url("/metrics"), target.received_metric)
    except (ServerError, WrkError, OSError, subprocess.SubprocessError, psycopg.Error) as exc:
        _log(f"{workload.name} / {target.name}: FAILED: {exc}")
        return CaseResult(workload.name, target.name, "failed", str(exc), exit_code=server.stop())
    code = server.stop()
    rates = f"{result.requests_per_s:,.0f} req/s, {result.ok_alerts_per_s:,.0f} alerts/s"
    _log(f"{workload.name} / {target.name}: {rates}, {result.non2xx} non-2xx")
    return CaseResult(
        workload.name,
        target.name,
        "ok",
        wrk=result,
        peak_rss_bytes=rss,
        server_cpu_s=cpu_used,
        pg_cpu_s=pg_cpu,
        other_cpu_s=max(0.0, other_cpu),
        exit_code=code,
        alerts_sent=sent,
        server_counted=counted,
    )


def _meta(args: argparse.Namespace, targets: list[Target]) -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return "n/a"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "n/a"

    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "wrk": version([WRK_BIN, "--version"]),
        "alertmanager": version([ALERTMANAGER_BIN, "--version"]) if os.path.exists(ALERTMANAGER_BIN) else "n/a",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "wrk_threads": 1,
        "seed": args.seed,
        "targets": {t.name: t.describe for t in targets},
    }


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen_workloads = _names(args.only, workloads.WORKLOAD_NAMES, "workload")
    chosen_targets = [t for t in TARGETS if t.name in _names(args.targets, TARGET_NAMES, "target")]
    if not os.access(WRK_BIN, os.X_OK):
        raise SystemExit(f"{WRK_BIN} not found: apt-get install wrk")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    load = os.getloadavg()[0]
    if load > 0.5:
        _log(f"warning: 1-minute load average is {load:.2f} before the start: other work skews the figures")
    meta = _meta(args, chosen_targets)
    results: list[CaseResult] = []
    summaries: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="itsmd-bench-") as tmp:
            for name in chosen_workloads:
                workload = workloads.build(name, args.seed)
                summaries[name] = workload.summary
                pool_file = workload.write_pool(Path(tmp) / f"{name}.pool.lua")
                rs = [run_case(t, workload, pool_file, Path(tmp) / f"{name}-{t.name}", args) for t in chosen_targets]
                results.extend(rs)
                print("\n" + report.workload_table(name, workload.summary, rs), flush=True)
    except KeyboardInterrupt:
        _log("interrupted: servers stopped, temp files removed")
        return 130
    print(
        f"\nwrk -t1 -c{args.connections}, {args.duration:g} s per case after {args.warmup:g} s warm-up, on "
        f"{os.cpu_count()} cores shared by wrk and the server; alerts/s counts only alerts answered 2xx."
    )
    print("\n".join(report.goal_lines(results)))
    if args.json:
        report.write_json(args.json, meta, summaries, results)
        _log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
