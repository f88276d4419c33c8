"""Scale: does an unchanged re-send cost the same at 1k and at 300k active alerts, and what does memory do?

    .venv/bin/python -m bench.scale [--levels 1000,10000,...] [--paths v2,webhook] [--duration S]

Per path (``v2``: Prometheus' ``POST /api/v2/alerts``; ``webhook``: Alertmanager's ``POST /webhook/alertmanager``),
one itsmd with the default config and a fresh data folder is filled level by level with distinct firing alerts
(50 alert names x 200 services x instances, so up to 10k open incidents); at each level wrk re-sends batches of
50 alerts drawn at random from the active set (``bench/scale.lua``) and the table gets the re-send rate, the
server's RSS and the time of ``GET /metrics`` and of the open incidents list. Then the ceiling (a bare aiohttp
server, ``bench/ceiling.py``) takes the same ``v2`` re-sends: if it is not well above itsmd, wrk is the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from bench.server import ServerError, ServerProcess, cpu_seconds, free_port, scrape_counter
from bench.targets import REPO_ROOT, TARGETS
from bench.wrk import WRK_BIN, run_wrk_script
from daemon.alerts.table import SEEN_WRITE_DELAY
from integrations.alertmanager.fingerprint import fingerprint

SCRIPT = Path(__file__).resolve().parent / "scale.lua"
BATCH = 50  # alerts per request; batch b is alerts 50b..50b+49 (one service, one instance)
DEFAULT_LEVELS = (1_000, 10_000, 30_000, 100_000, 300_000)
PATHS = {"v2": "/api/v2/alerts", "webhook": "/webhook/alertmanager"}
GENERATOR_URL = "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
#: Issue 15's targets: re-send rate at 100k at least this share of the rate at 1k; RSS at 100k at most this.
FLAT_RATIO, FLAT_AT, FLAT_BASE = 0.85, 100_000, 1_000
RSS_LIMIT_MIB = 250.0


def _log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def labels(i: int) -> tuple[dict[str, str], dict[str, str]]:
    """Alert i's labels and annotations: must build what ``scale.lua`` builds, key for key."""
    s = (i // BATCH) % 200
    alertname, service, instance, team = (
        f"Scale{i % BATCH:02d}",
        f"svc-{s:03d}",
        f"host-{i // 10000:04d}:9100",
        (f"team-{s % 20:02d}"),
    )
    lbl = {
        "alertname": alertname,
        "cluster": "prod-eu-1",
        "instance": instance,
        "job": service,
        "namespace": f"ns-{service}",
        "service": service,
        "severity": "warning",
        "team": team,
    }
    ann = {
        "summary": f"{alertname} on {service} ({instance})",
        "description": f"{alertname} is firing for {service} on {instance} (team={team})",
    }
    return lbl, ann


def body(path: str, first: int, last: int, starts: str, now: datetime) -> bytes:
    """The fill's request for alerts first..last-1 (one batch), as wrk sends its re-sends."""
    alerts: list[dict[str, Any]] = []
    for i in range(first, last):
        lbl, ann = labels(i)
        if path == "webhook":
            alerts.append({
                "status": "firing", "labels": lbl, "annotations": ann, "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": GENERATOR_URL, "fingerprint": fingerprint(lbl),
            })  # fmt: skip
        else:
            ends = (now + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            alerts.append({"annotations": ann, "endsAt": ends, "startsAt": starts, "generatorURL": GENERATOR_URL,
                           "labels": lbl})  # fmt: skip
    if path == "v2":
        return json.dumps(alerts).encode()
    service = alerts[0]["labels"]["service"]
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{service="{service}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "itsmd", "groupLabels": {"service": service},
        "commonLabels": {"cluster": "prod-eu-1", "service": service}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "alerts": alerts,
    }).encode()  # fmt: skip


async def _fill(url: str, path: str, *, start: int, stop: int, starts: str, in_flight: int = 8) -> None:
    """Send alerts start..stop-1 once each, ``in_flight`` requests at a time; every answer must be 2xx."""
    batches = iter(range(start, stop, BATCH))

    async def worker(session: aiohttp.ClientSession) -> None:
        for first in batches:
            data = body(path, first, min(first + BATCH, stop), starts, datetime.now(UTC))
            async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as resp:
                if resp.status // 100 != 2:
                    raise ServerError(f"fill: {resp.status} {await resp.text()}")

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))


def _get_ms(url: str, times: int = 5) -> float:
    """Median wall time of ``times`` GETs (the body read whole)."""
    took = []
    for _ in range(times):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (loopback http)
            resp.read()
        took.append((time.perf_counter() - t0) * 1000)
    return statistics.median(took)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ServerError(f"no VmRSS in /proc/{pid}/status")


@dataclass
class Row:
    path: str
    target: str
    active: int
    fill_s: float
    alerts_per_s: float
    p99_ms: float
    non2xx: int
    rss_mib: float
    metrics_ms: float | None
    incidents_ms: float | None
    srv_cpu: float
    wrk_cpu: float

    @property
    def per_cpu_s(self) -> float:
        """Alerts per second of server CPU: the per-alert cost, less skewed than the rate by a busy machine."""
        return self.alerts_per_s / self.srv_cpu if self.srv_cpu else 0.0

    firing: float | None  # the server's itsmd_alerts_firing after the run: must equal `active`


def _resend(
    server: ServerProcess,
    target: str,
    *,
    path: str,
    active: int,
    starts: str,
    fps: Path | None,
    args: argparse.Namespace,
) -> Row:
    url = server.url(PATHS[path])
    script_args = [str(active), path, starts, str(args.seed)] + ([str(fps)] if fps else [])
    if args.warmup >= 1:
        run_wrk_script(url, SCRIPT, script_args, duration_s=args.warmup, connections=args.connections)
    cpu0 = cpu_seconds(server.pid)
    r = run_wrk_script(url, SCRIPT, script_args, duration_s=args.duration, connections=args.connections)
    srv_cpu = (cpu_seconds(server.pid) - cpu0) / r.duration_s
    if not server.alive():
        raise ServerError(f"{target} died during the run:\n{server.log_tail()}")
    itsmd = target == "itsmd"
    return Row(
        path=path,
        target=target,
        active=active,
        fill_s=0.0,
        alerts_per_s=r.ok_alerts_per_s,
        p99_ms=r.p99_ms,
        non2xx=r.non2xx + r.socket_errors,
        rss_mib=_rss_mib(server.pid),
        metrics_ms=_get_ms(server.url("/metrics")) if itsmd else None,
        incidents_ms=_get_ms(server.url("/api/v1/incidents?status=open")) if itsmd else None,
        srv_cpu=srv_cpu,
        wrk_cpu=r.wrk_cpu_s / r.duration_s,
        firing=scrape_counter(server.url("/metrics"), "itsmd_alerts_firing") if itsmd else None,
    )


def _fingerprints(tmp: Path, n: int) -> Path:
    out = tmp / "fingerprints.txt"
    out.write_text("".join(fingerprint(labels(i)[0]) + "\n" for i in range(n)), encoding="ascii")
    return out


def run_path(path: str, levels: list[int], tmp: Path, args: argparse.Namespace) -> list[Row]:
    itsmd = next(t for t in TARGETS if t.name == "itsmd")
    workdir = tmp / f"itsmd-{path}"
    workdir.mkdir()
    port = free_port()
    starts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    fps = _fingerprints(tmp, max(levels)) if path == "webhook" else None
    rows: list[Row] = []
    with ServerProcess("itsmd", itsmd.command(workdir, port), port=port, log_path=workdir / "server.log",
                       cwd=REPO_ROOT) as server:  # fmt: skip
        server.wait_ready("/-/ready", 60)
        filled = 0
        for level in levels:
            t0 = time.monotonic()
            asyncio.run(_fill(server.url(PATHS[path]), path, start=filled, stop=level, starts=starts))
            fill_s = time.monotonic() - t0
            filled = level
            row = _resend(server, "itsmd", path=path, active=level, starts=starts, fps=fps, args=args)
            row.fill_s = fill_s
            rows.append(row)
            _log(f"{path} {level:,}: filled in {fill_s:.1f} s, {row.alerts_per_s:,.0f} alerts/s, "
                 f"RSS {row.rss_mib:.0f} MiB, firing {row.firing}")  # fmt: skip
    return rows


def run_ceiling(level: int, tmp: Path, args: argparse.Namespace) -> Row:
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with ServerProcess("ceiling", argv, port=port, log_path=tmp / "ceiling.log", cwd=REPO_ROOT) as server:
        server.wait_ready("/-/ready", 60)
        return _resend(server, "ceiling", path="v2", active=level, starts=starts, fps=None, args=args)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    lines = [
        "| path | target | active alerts | fill s | re-send alerts/s | per srv CPU-s | p99 ms | errors | RSS MiB "
        "| /metrics ms | open incidents list ms | srv CPU | wrk CPU | firing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.path} | {r.target} | {r.active:,} | {r.fill_s:.1f} | {r.alerts_per_s:,.0f} | {r.per_cpu_s:,.0f} "
            f"| {r.p99_ms:.1f} "
            f"| {r.non2xx} | {r.rss_mib:.0f} | {_fmt(r.metrics_ms, '.1f')} | {_fmt(r.incidents_ms, '.1f')} "
            f"| {r.srv_cpu:.0%} | {r.wrk_cpu:.0%} | {_fmt(r.firing, '.0f')} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for path in PATHS:
        by = {r.active: r for r in rows if r.path == path and r.target == "itsmd"}
        if FLAT_BASE in by and FLAT_AT in by:
            ratio = by[FLAT_AT].alerts_per_s / by[FLAT_BASE].alerts_per_s
            per_cpu = by[FLAT_AT].per_cpu_s / by[FLAT_BASE].per_cpu_s
            ok = "met" if ratio >= FLAT_RATIO else "NOT met"
            out.append(f"{path}: re-send rate at {FLAT_AT:,} / at {FLAT_BASE:,} = {ratio:.2f} "
                       f"(target >= {FLAT_RATIO}): {ok}; per server CPU-second {per_cpu:.2f}")  # fmt: skip
        if FLAT_AT in by:
            rss = by[FLAT_AT].rss_mib
            ok = "met" if rss <= RSS_LIMIT_MIB else "NOT met"
            out.append(f"{path}: RSS at {FLAT_AT:,} active = {rss:.0f} MiB (target <= {RSS_LIMIT_MIB:.0f}): {ok}")
        wrong = [r.active for r in by.values() if r.firing != r.active]
        if wrong:
            out.append(f"{path}: WARNING itsmd_alerts_firing differs from the alerts sent at {wrong}")
    ceiling = [r for r in rows if r.target == "ceiling"]
    if ceiling:
        best = max((r.alerts_per_s for r in rows if r.target == "itsmd"), default=0.0)
        out.append(f"ceiling (bare aiohttp, same v2 re-sends): {ceiling[0].alerts_per_s:,.0f} alerts/s, "
                   f"itsmd's best is {best / ceiling[0].alerts_per_s:.2f} x that")  # fmt: skip
    return out


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default=",".join(str(n) for n in DEFAULT_LEVELS), help="active alert counts")
    p.add_argument("--paths", default="v2,webhook", help="v2, webhook or both (default both)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per level (default 10)")
    p.add_argument(
        "--warmup",
        type=float,
        default=SEEN_WRITE_DELAY + 2,
        help="warm-up seconds per level, longer than the delay of last-seen writes so that they are in the "
        f"measured steady state (default {SEEN_WRITE_DELAY + 2:g})",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the ceiling run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows to FILE")
    args = p.parse_args(argv)
    levels = sorted({int(v) for v in args.levels.split(",") if v.strip()})
    paths = [v.strip() for v in args.paths.split(",") if v.strip()]
    if not levels or any(n < BATCH for n in levels) or any(v not in PATHS for v in paths):
        p.error(f"--levels: counts >= {BATCH}; --paths: from {', '.join(PATHS)}")
    if not os.access(WRK_BIN, os.X_OK):
        raise SystemExit(f"{WRK_BIN} not found: apt-get install wrk")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="itsmd-scale-") as tmp:
            for path in paths:
                rows += run_path(path, levels, Path(tmp), args)
            if not args.no_ceiling:
                rows.append(run_ceiling(levels[0], Path(tmp), args))
    except KeyboardInterrupt:
        _log("interrupted: servers stopped, temp files removed")
        return 130
    print(table(rows))
    print(f"\nwrk -t1 -c{args.connections}, {args.duration:g} s per level after {args.warmup:g} s warm-up, "
          f"batches of {BATCH}, {os.cpu_count()} cores shared by wrk and the server")  # fmt: skip
    print("\n".join(verdicts(rows)))
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) | {"per_cpu_s": r.per_cpu_s} for r in rows], indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
