"""Scale: does an unchanged re-send cost the same at 1k and at 300k active alerts, and what does memory do?

    .venv/bin/python -m bench.scale [--levels 1000,10000,...] [--paths v2,webhook] [--duration S] [--passes N]

Per path (``v2``: Prometheus' ``POST /api/v2/alerts``; ``webhook``: Alertmanager's ``POST /webhook/alertmanager``),
one itsmd with the default config and a fresh data folder is filled level by level with distinct firing alerts
(50 alert names x 200 services x instances, so up to 10k open incidents); at each level wrk re-sends batches of
50 alerts drawn at random from the active set (``bench/scale.lua``) in a few passes, each next to a pass at a
second itsmd that holds 1k alerts throughout (the base), so that the ratio of the two medians compares 100k
with 1k under the same load of a shared machine. The table gets the median re-send rate, the server's RSS and
the time of ``GET /metrics`` and of the open incidents list. Then the ceiling (a bare aiohttp server,
``bench/ceiling.py``) takes the same ``v2`` re-sends: if it is not well above itsmd, wrk is the limit.
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
class Pass:
    """One measured wrk run at one server."""

    alerts_per_s: float
    alerts: int
    p99_ms: float
    errors: int
    srv_cpu: float
    wrk_cpu: float


@dataclass
class Row:
    """One level of one path: the medians of its passes, and of the base server's passes between them."""

    path: str
    target: str
    active: int
    fill_s: float
    passes: list[float]
    """Re-send alerts/s of each pass at this level."""
    base_passes: list[float]
    """Re-send alerts/s of each pass of the base server (FLAT_BASE active alerts), interleaved with them."""
    us_per_alert: float
    """Server CPU (all threads) from the first pass to the end of the last, idle gaps included (lazy
    last-seen writes land there too), per alert re-sent."""
    base_us_per_alert: float
    p99_ms: float
    errors: int
    rss_mib: float
    metrics_ms: float | None
    incidents_ms: float | None
    srv_cpu: float
    wrk_cpu: float
    firing: float | None  # the server's itsmd_alerts_firing after the run: must equal `active`

    @property
    def alerts_per_s(self) -> float:
        return statistics.median(self.passes)

    @property
    def base_alerts_per_s(self) -> float:
        return statistics.median(self.base_passes) if self.base_passes else 0.0

    @property
    def vs_base(self) -> float:
        """This level's median rate over the base server's, measured in turns with it."""
        return self.alerts_per_s / self.base_alerts_per_s if self.base_alerts_per_s else 0.0


def _one_pass(server: ServerProcess, url: str, script_args: list[str], args: argparse.Namespace) -> Pass:
    cpu0 = cpu_seconds(server.pid)
    r = run_wrk_script(url, SCRIPT, script_args, duration_s=args.duration, connections=args.connections)
    if not server.alive():
        raise ServerError(f"{server.name} died during the run:\n{server.log_tail()}")
    return Pass(
        alerts_per_s=r.ok_alerts_per_s,
        alerts=round(r.ok_alerts_per_s * r.duration_s),
        p99_ms=r.p99_ms,
        errors=r.non2xx + r.socket_errors,
        srv_cpu=(cpu_seconds(server.pid) - cpu0) / r.duration_s,
        wrk_cpu=r.wrk_cpu_s / r.duration_s,
    )


@dataclass
class Subject:
    """A server being measured and what its wrk script needs."""

    server: ServerProcess
    path: str
    active: int
    script_args: list[str]

    @property
    def url(self) -> str:
        return self.server.url(PATHS[self.path])

    def warm(self, args: argparse.Namespace) -> None:
        if args.warmup >= 1:
            run_wrk_script(self.url, SCRIPT, self.script_args, duration_s=args.warmup, connections=args.connections)


def _script_args(active: int, path: str, starts: str, fps: Path | None, seed: int) -> list[str]:
    return [str(active), path, starts, str(seed)] + ([str(fps)] if fps else [])


def _measure(level: Subject, base: Subject | None, args: argparse.Namespace, fill_s: float) -> Row:
    """`args.passes` passes at `level`, each next to one at `base` (alternating which goes first, so a drift
    of the machine's load weighs on both alike); medians."""
    mine: list[Pass] = []
    theirs: list[Pass] = []
    cpu0 = {id(s): cpu_seconds(s.server.pid) for s in (level, base) if s is not None}
    for i in range(args.passes):
        order = [level, base] if i % 2 else [base, level]
        for subject in order:
            if subject is None:
                continue
            p = _one_pass(subject.server, subject.url, subject.script_args, args)
            (mine if subject is level else theirs).append(p)

    def per_alert(subject: Subject | None, passes: list[Pass]) -> float:
        if subject is None or not passes:
            return 0.0
        sent = sum(p.alerts for p in passes)
        return (cpu_seconds(subject.server.pid) - cpu0[id(subject)]) / sent * 1e6 if sent else 0.0

    itsmd = level.server.name == "itsmd"
    server = level.server
    return Row(
        path=level.path,
        target=server.name,
        active=level.active,
        fill_s=fill_s,
        passes=[p.alerts_per_s for p in mine],
        base_passes=[p.alerts_per_s for p in theirs],
        us_per_alert=per_alert(level, mine),
        base_us_per_alert=per_alert(base, theirs),
        p99_ms=statistics.median(p.p99_ms for p in mine),
        errors=sum(p.errors for p in mine),
        rss_mib=_rss_mib(server.pid),
        metrics_ms=_get_ms(server.url("/metrics")) if itsmd else None,
        incidents_ms=_get_ms(server.url("/api/v1/incidents?status=open")) if itsmd else None,
        srv_cpu=statistics.median(p.srv_cpu for p in mine),
        wrk_cpu=statistics.median(p.wrk_cpu for p in mine),
        firing=scrape_counter(server.url("/metrics"), "itsmd_alerts_firing") if itsmd else None,
    )


def _fingerprints(tmp: Path, n: int) -> Path:
    out = tmp / "fingerprints.txt"
    out.write_text("".join(fingerprint(labels(i)[0]) + "\n" for i in range(n)), encoding="ascii")
    return out


def _itsmd(tmp: Path, name: str) -> ServerProcess:
    itsmd = next(t for t in TARGETS if t.name == "itsmd")
    workdir = tmp / name
    workdir.mkdir()
    port = free_port()
    return ServerProcess("itsmd", itsmd.command(workdir, port), port=port, log_path=workdir / "server.log",
                         cwd=REPO_ROOT)  # fmt: skip


def run_path(path: str, levels: list[int], tmp: Path, args: argparse.Namespace) -> list[Row]:
    """Two itsmd: the base one holds FLAT_BASE alerts throughout, the other is filled level by level; at each
    level they take passes in turn."""
    starts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    fps = _fingerprints(tmp, max(levels)) if path == "webhook" else None
    rows: list[Row] = []
    with _itsmd(tmp, f"itsmd-{path}") as server, _itsmd(tmp, f"itsmd-{path}-base") as base_server:
        server.wait_ready("/-/ready", 60)
        base_server.wait_ready("/-/ready", 60)
        asyncio.run(_fill(base_server.url(PATHS[path]), path, start=0, stop=FLAT_BASE, starts=starts))
        base = Subject(base_server, path, FLAT_BASE, _script_args(FLAT_BASE, path, starts, fps, args.seed + 1))
        base.warm(args)
        filled = 0
        for level in levels:
            t0 = time.monotonic()
            asyncio.run(_fill(server.url(PATHS[path]), path, start=filled, stop=level, starts=starts))
            fill_s = time.monotonic() - t0
            filled = level
            subject = Subject(server, path, level, _script_args(level, path, starts, fps, args.seed))
            subject.warm(args)
            row = _measure(subject, base, args, fill_s)
            rows.append(row)
            _log(f"{path} {level:,}: filled in {fill_s:.1f} s, {row.alerts_per_s:,.0f} alerts/s "
                 f"(passes {', '.join(f'{v:,.0f}' for v in row.passes)}; base {row.base_alerts_per_s:,.0f}), "
                 f"RSS {row.rss_mib:.0f} MiB, firing {row.firing}")  # fmt: skip
    return rows


def run_ceiling(level: int, tmp: Path, args: argparse.Namespace) -> Row:
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with ServerProcess("ceiling", argv, port=port, log_path=tmp / "ceiling.log", cwd=REPO_ROOT) as server:
        server.wait_ready("/-/ready", 60)
        subject = Subject(server, "v2", level, _script_args(level, "v2", starts, None, args.seed))
        subject.warm(args)
        return _measure(subject, None, args, 0.0)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    """The issue's table (re-send rate, RSS, /metrics, open incidents list), then what tells how far to trust
    it: the base server's rate in the same turns, CPU per alert, spread of the passes."""
    lines = [
        "| path | target | active alerts | re-send alerts/s | RSS MiB | /metrics ms | open incidents list ms "
        "| base 1k alerts/s | vs base | srv CPU us/alert | base us/alert | passes (alerts/s) | p99 ms | errors "
        "| srv CPU | wrk CPU | fill s | firing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = r.base_passes
        lines.append(
            f"| {r.path} | {r.target} | {r.active:,} | {r.alerts_per_s:,.0f} | {r.rss_mib:.0f} "
            f"| {_fmt(r.metrics_ms, '.1f')} | {_fmt(r.incidents_ms, '.1f')} "
            f"| {f'{r.base_alerts_per_s:,.0f}' if base else '-'} | {f'{r.vs_base:.2f}' if base else '-'} "
            f"| {r.us_per_alert:.2f} | {f'{r.base_us_per_alert:.2f}' if base else '-'} "
            f"| {' / '.join(f'{v / 1000:.0f}k' for v in r.passes)} | {r.p99_ms:.1f} | {r.errors} "
            f"| {r.srv_cpu:.0%} | {r.wrk_cpu:.0%} | {r.fill_s:.1f} | {_fmt(r.firing, '.0f')} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for path in PATHS:
        by = {r.active: r for r in rows if r.path == path and r.target == "itsmd"}
        if FLAT_AT in by:
            at = by[FLAT_AT]
            ok = "met" if at.vs_base >= FLAT_RATIO else "NOT met"
            cpu = at.base_us_per_alert / at.us_per_alert if at.us_per_alert else 0.0
            out.append(f"{path}: re-send rate at {FLAT_AT:,} / at {FLAT_BASE:,} (medians of passes taken in turns) "
                       f"= {at.vs_base:.2f} (target >= {FLAT_RATIO}): {ok}; per server CPU {cpu:.2f}")  # fmt: skip
            if FLAT_BASE in by:
                out.append(f"{path}: against the {FLAT_BASE:,} row of the same server (other minutes, so more "
                           f"noise): {at.alerts_per_s / by[FLAT_BASE].alerts_per_s:.2f}")  # fmt: skip
            ok = "met" if at.rss_mib <= RSS_LIMIT_MIB else "NOT met"
            out.append(
                f"{path}: RSS at {FLAT_AT:,} active = {at.rss_mib:.0f} MiB (target <= {RSS_LIMIT_MIB:.0f}): {ok}"
            )
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
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per pass (default 5)")
    p.add_argument(
        "--passes",
        type=int,
        default=3,
        help="passes per level, each next to one at the base server (default 3; the medians are reported)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=SEEN_WRITE_DELAY + 2,
        help="warm-up seconds per level (and once for the base server), longer than the delay of last-seen "
        f"writes so that they are in the measured steady state (default {SEEN_WRITE_DELAY + 2:g})",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the ceiling run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rows to FILE")
    args = p.parse_args(argv)
    levels = sorted({int(v) for v in args.levels.split(",") if v.strip()})
    paths = [v.strip() for v in args.paths.split(",") if v.strip()]
    if not levels or any(n < BATCH for n in levels) or any(v not in PATHS for v in paths) or args.passes < 1:
        p.error(f"--levels: counts >= {BATCH}; --paths: from {', '.join(PATHS)}; --passes >= 1")
    if not os.access(WRK_BIN, os.X_OK):
        raise SystemExit(f"{WRK_BIN} not found: apt-get install wrk")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    load_at_start = os.getloadavg()[0]
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
    print(f"\nwrk -t1 -c{args.connections}, {args.passes} passes of {args.duration:g} s per level after "
          f"{args.warmup:g} s warm-up, each next to one at a base server holding {FLAT_BASE:,} alerts; batches of "
          f"{BATCH}; {os.cpu_count()} cores shared by wrk and the servers; load average at start "
          f"{load_at_start:.1f}")  # fmt: skip
    print("\n".join(verdicts(rows)))
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) | {"alerts_per_s": r.alerts_per_s, "vs_base": r.vs_base} for r in rows], indent=2)
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
