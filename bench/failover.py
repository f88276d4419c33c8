"""Failover under load: three itsmd replicas on one fresh PostgreSQL database, the leader killed N times.

    .venv/bin/python -m bench.failover [--failovers 10] [--duration 10] [--signal kill|stop] [--lease 3] [--renew 1]

The replicas (``python -m daemon run``, ``storage.backend: postgres``, ``replica: {name, lease, renew}``, one
shared audit key) listen on free ports with temp folders of their own. A steady ingest load
(bench/failover_load.py) is spread over the replicas in rotation. Each round, after ``--duration`` seconds of
load, the leader is sent SIGKILL (``--signal stop``: SIGSTOP, then SIGCONT once its lease has run out and
another replica leads) and taken out of the rotation; the round measures

* ``leader s``: from the signal to another replica reporting ``itsmd_leader 1`` on /metrics,
* ``2xx all s`` / ``2xx leader s``: from the signal until ingest is answered 2xx again on every live replica /
  on the new leader (the first 2xx to a request sent after that replica's last failed one),
* the requests that failed in the round: in flight to the killed replica, answered non-2xx by a live one, or
  with no answer from a live one (refused or reset connections, timeouts),

then restarts the killed replica (or continues it) and waits until it serves as a follower before putting it
back in the rotation. At the end: min / median / max of the times, and every acknowledged alert looked up in
PostgreSQL (after the inbox is applied): each must be stored exactly once. Processes, folders and the database
are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import psycopg

from bench import pg
from bench.failover_load import JOB, Load, Outcome, recovered_at
from bench.server import ServerProcess, free_port
from bench.targets import REPO_ROOT

_REPLICA_YAML = """\
storage: {{backend: postgres, dsn_file: {dsn}}}
replica: {{name: {name}, lease: {lease:g}s, renew: {renew:g}s}}
audit: {{key_file: {audit_key}}}
runbooks: {{digest_key_file: {digest_key}}}
"""


def _log(msg: str) -> None:
    print(f"[failover {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class FailoverError(RuntimeError):
    """A replica did not start, no leader appeared, or ingest did not come back in time."""


@dataclass
class Replica:
    name: str
    port: int
    workdir: Path
    proc: ServerProcess | None = None
    frozen: bool = False
    starts: int = 0

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "daemon", "run", "--config", str(self.workdir / f"{self.name}.yaml"),
            "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.workdir / f"{self.name}-data"),
        ]  # fmt: skip

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"{self.name}.{self.starts}.log"
        self.proc = ServerProcess(self.name, self.argv(), port=self.port, log_path=log, cwd=REPO_ROOT).__enter__()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
        self.frozen = sig == signal.SIGSTOP

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.frozen:
            self.signal(signal.SIGCONT)
        self.proc.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self) -> str:
        return self.proc.log_tail(15) if self.proc is not None else ""


@dataclass
class Round:
    number: int
    killed_at: float  # time.monotonic()
    killed: str
    new_leader: str
    leader_s: float
    all_live_s: float | None
    new_leader_2xx_s: float | None
    to_killed: int
    non2xx_live: Counter[int]
    errors_live: Counter[str]
    back_s: float

    def row(self) -> str:
        def s(v: float | None) -> str:
            return "never" if v is None else f"{v:.2f}"

        non2xx = ",".join(f"{n}x{code}" for code, n in sorted(self.non2xx_live.items())) or "0"
        errors = ",".join(f"{n}x{e}" for e, n in sorted(self.errors_live.items())) or "0"
        return (
            f"{self.number:>5}  {self.killed:<6} {self.new_leader:<6} {s(self.leader_s):>8}  {s(self.all_live_s):>9}"
            f"  {s(self.new_leader_2xx_s):>11}  {self.to_killed:>9}  {non2xx:<14} {errors:<26} {self.back_s:>6.2f}"
        )


HEADER = (
    "round  killed new    leader s  2xx all s  2xx leader s  to killed  non-2xx live   no answer from live"
    "        back s"
)


@dataclass
class Cluster:
    replicas: list[Replica]
    rotation: list[Replica] = field(default_factory=list)

    def urls(self) -> list[tuple[str, str]]:
        return [(r.name, r.url("/api/v2/alerts")) for r in self.rotation]

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.proc is not None and r.proc.alive() and not r.frozen]


async def _leading(http: aiohttp.ClientSession, replica: Replica) -> int | None:
    """itsmd_leader on the replica's /metrics, None when it does not answer."""
    try:
        async with http.get(replica.url("/metrics"), timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    for line in text.splitlines():
        if line.startswith("itsmd_leader "):
            return int(float(line.split()[1]))
    return None


async def _ready(http: aiohttp.ClientSession, replica: Replica) -> bool:
    try:
        async with http.get(replica.url("/-/ready"), timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _serving_as(http: aiohttp.ClientSession, replica: Replica, leader: int, within: float) -> float:
    """Wait until the replica reports ``itsmd_leader`` = ``leader`` and is ready; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if replica.proc is None or not replica.proc.alive():
            raise FailoverError(f"{replica.name} exited:\n{replica.log_tail()}")
        if await _leading(http, replica) == leader and await _ready(http, replica):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise FailoverError(f"{replica.name} not serving with itsmd_leader {leader} after {within:.0f} s")


async def _find_leader(http: aiohttp.ClientSession, candidates: list[Replica], within: float) -> Replica:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(_leading(http, r) for r in candidates))
        leaders = [r for r, s in zip(candidates, states, strict=True) if s == 1]
        if leaders:
            return leaders[0]
        await asyncio.sleep(0.05)
    raise FailoverError(f"no leader among {', '.join(r.name for r in candidates)} after {within:.0f} s")


async def _recovered(load: Load, replicas: list[Replica], since: float, within: float) -> None:
    """Wait until ingest answers 2xx again on every replica listed (or ``within`` s: the round says never)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(recovered_at(load.outcomes, r.name, since, float("inf")) is not None for r in replicas):
            return
        await asyncio.sleep(0.05)


async def _round(
    number: int, cluster: Cluster, load: Load, http: aiohttp.ClientSession, args: argparse.Namespace
) -> Round:
    leader = await _find_leader(http, cluster.live(), 30.0)
    others = [r for r in cluster.live() if r is not leader]
    sig = signal.SIGKILL if args.signal == "kill" else signal.SIGSTOP
    cluster.rotation.remove(leader)
    killed_at = time.monotonic()
    leader.signal(sig)
    new = await _find_leader(http, others, args.lease * 5 + 30)
    leader_s = time.monotonic() - killed_at
    await _recovered(load, others, killed_at, 30.0)
    if sig is signal.SIGKILL:
        if leader.proc is not None:
            leader.proc.stop()  # reaps it
        back_from = time.monotonic()
        leader.start()
    else:
        # Continue it only once its lease has run out for sure: it must find itself deposed, not still leading.
        await asyncio.sleep(max(0.0, killed_at + args.lease + args.renew - time.monotonic()))
        back_from = time.monotonic()
        leader.signal(signal.SIGCONT)
    await _serving_as(http, leader, 0, 60.0)
    back_s = time.monotonic() - back_from
    cluster.rotation.append(leader)
    end = time.monotonic()
    recovered = {r.name: recovered_at(load.outcomes, r.name, killed_at, end) for r in others}
    times = {name: None if t is None else t - killed_at for name, t in recovered.items()}
    in_round = [o for o in load.outcomes if killed_at <= o.done and o.sent < end and not o.ok]
    live_failures = [o for o in in_round if o.replica != leader.name]
    return Round(
        number,
        killed_at,
        leader.name,
        new.name,
        leader_s,
        _latest(list(times.values())),
        times[new.name],
        sum(1 for o in in_round if o.replica == leader.name),
        Counter(o.status for o in live_failures if o.status is not None),
        Counter(o.error for o in live_failures if o.status is None),
        back_s,
    )


def _latest(times: list[float | None]) -> float | None:
    """The last of the times, None (never) if any is None."""
    got = [t for t in times if t is not None]
    return max(got) if got and len(got) == len(times) else None


def _inbox_pending(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT max(value) FROM counters WHERE name = 'itsmd_inbox_applied_seq'").fetchone()
        cursor = int(row[0]) if row is not None and row[0] is not None else 0
        pending = conn.execute("SELECT count(*) FROM inbox WHERE seq > %s", (cursor,)).fetchone()
    return int(pending[0]) if pending is not None else 0


def _stored_instances(dsn: str) -> Counter[str]:
    """How many rows of the alerts table carry each instance label of the bench's alerts."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT labels FROM alerts WHERE labels LIKE %s", (f'%"job":"{JOB}"%',)).fetchall()
    return Counter(json.loads(r[0])["instance"] for r in rows)


@dataclass
class Check:
    acked: int
    stored: int
    missing: list[str]
    duplicated: list[str]
    unacked_stored: int
    inbox_pending: int


async def _check(load: Load, dsn: str, within: float = 60.0) -> Check:
    deadline = time.monotonic() + within
    pending = await asyncio.to_thread(_inbox_pending, dsn)
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        pending = await asyncio.to_thread(_inbox_pending, dsn)
    await asyncio.sleep(1.0)  # the leader's next writer batch: what the last inbox rows changed
    stored = await asyncio.to_thread(_stored_instances, dsn)
    acked = {f"fo-{n}" for n in load.acked}
    return Check(
        acked=len(acked),
        stored=len(stored),
        missing=sorted(acked - set(stored)),
        duplicated=sorted(i for i, n in stored.items() if n > 1),
        unacked_stored=len(set(stored) - acked),
        inbox_pending=pending,
    )


def _missing_detail(check: Check, load: Load, rounds: list[Round], started: float) -> list[str]:
    """Who acknowledged the alerts that are not stored, and when, against the kills: where to look."""
    kills = ", ".join(f"{r.number}: {r.killed_at - started:.1f} s ({r.killed} -> {r.new_leader})" for r in rounds)
    lines = [f"  kills at (round: s since the load started): {kills}"] if check.missing else []
    for instance in check.missing[:20]:
        replica, done = load.acked_by[int(instance.removeprefix("fo-"))]
        before = [r for r in rounds if r.killed_at <= done]
        if before and done < before[-1].killed_at + before[-1].leader_s:
            role = f"a follower, no leader ({before[-1].killed} killed {done - before[-1].killed_at:.2f} s before)"
        else:
            leader = before[-1].new_leader if before else "r1"
            role = "the leader" if replica == leader else f"a follower ({leader} leading)"
        after = [r for r in rounds if r.killed_at > done]
        if after:
            role += f", {after[0].killed_at - done:.2f} s before {after[0].killed} was killed"
        lines.append(f"  not stored: {instance}, first acknowledged by {replica}, {role}, at {done - started:.2f} s")
    return lines


def _stats(name: str, values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    never = len(values) - len(got)
    if not got:
        return f"  {name:<22} n/a ({never} never)"
    tail = f", {never} never" if never else ""
    return f"  {name:<22} min {min(got):.2f}  median {statistics.median(got):.2f}  max {max(got):.2f} s{tail}"


def _totals(outcomes: list[Outcome], seconds: float, load: Load) -> list[str]:
    ok = sum(1 for o in outcomes if o.ok)
    statuses = Counter(o.status for o in outcomes if o.status is not None and not o.ok)
    errors = Counter(o.error for o in outcomes if o.status is None)
    return [
        f"requests {len(outcomes):,} in {seconds:.0f} s ({len(outcomes) / seconds:.0f}/s), 2xx {ok:,}, "
        f"non-2xx {dict(statuses) or 0}, no answer {dict(errors) or 0}; alerts acknowledged {len(load.acked):,} "
        f"distinct ({load.batch} a request, {load.new_fraction:.0%} new)",
    ]


async def _start(http: aiohttp.ClientSession, cluster: Cluster) -> None:
    """The first replica until it leads, then the others until they follow."""
    first, *rest = cluster.replicas
    first.start()
    _log(f"{first.name} leads after {await _serving_as(http, first, 1, 60.0):.2f} s")
    for r in rest:
        r.start()
    for r in rest:
        _log(f"{r.name} follows after {await _serving_as(http, r, 0, 60.0):.2f} s")


async def run(args: argparse.Namespace, cluster: Cluster, dsn: str) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            await _start(http, cluster)
        except FailoverError as exc:
            _log(f"FAILED to start the replicas: {exc}")
            return 1
        cluster.rotation = list(cluster.replicas)
        load = Load(cluster.urls, concurrency=args.concurrency, rate=args.rate, batch=args.batch,
                    new_fraction=args.new_fraction, timeout=args.timeout, seed=args.seed)  # fmt: skip
        stop = asyncio.Event()
        started = time.monotonic()
        load_task = asyncio.create_task(load.run(stop))
        rounds: list[Round] = []
        error: str | None = None
        try:
            for n in range(1, args.failovers + 1):
                await asyncio.sleep(args.duration)
                rounds.append(await _round(n, cluster, load, http, args))
                _log(f"round {n}: {rounds[-1].killed} -> {rounds[-1].new_leader} in {rounds[-1].leader_s:.2f} s")
            await asyncio.sleep(args.duration)
        except FailoverError as exc:
            error = str(exc)
            _log(f"FAILED: {exc}")
            for r in cluster.replicas:
                _log(f"--- {r.name} log tail:\n{r.log_tail()}")
                if r.frozen:  # so that a leader can apply the inbox before the check
                    r.signal(signal.SIGCONT)
        finally:
            stop.set()
            await load_task
        seconds = time.monotonic() - started
        check = await _check(load, dsn)
    sig = "SIGKILL" if args.signal == "kill" else "SIGSTOP past the lease, then SIGCONT"
    print(f"\n== failover: 3 replicas, lease {args.lease:g} s, renew {args.renew:g} s, {sig}, "
          f"{args.duration:g} s of load before each round")  # fmt: skip
    print(HEADER)
    for done in rounds:
        print(done.row())
    print(f"{len(rounds)} of {args.failovers} failovers")
    print(_stats("leader s", [r.leader_s for r in rounds]))
    print(_stats("2xx all live s", [r.all_live_s for r in rounds]))
    print(_stats("2xx new leader s", [r.new_leader_2xx_s for r in rounds]))
    print("\n".join(_totals(load.outcomes, seconds, load)))
    if check.duplicated or (check.missing and not check.inbox_pending):
        verdict = "LOST OR DUPLICATED"
    elif check.inbox_pending:
        verdict = "INCOMPLETE: inbox not applied within 60 s, the missing ones may be in it"
    else:
        verdict = "OK"
    print(
        f"stored check ({verdict}): acknowledged {check.acked:,}, stored {check.stored:,}, acknowledged but not "
        f"stored {len(check.missing)}{' ' + ', '.join(check.missing[:10]) if check.missing else ''}, stored more "
        f"than once {len(check.duplicated)}, stored but never acknowledged {check.unacked_stored} (in flight when a "
        f"replica died, or answered after the client gave up), inbox rows not applied {check.inbox_pending}"
    )
    for line in _missing_detail(check, load, rounds, started):
        print(line)
    if args.json:
        doc: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}, "error": error,
                               "rounds": [r.__dict__ | {"non2xx_live": dict(r.non2xx_live),
                                                        "errors_live": dict(r.errors_live)} for r in rounds],
                               "check": check.__dict__}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if error is None and verdict == "OK" else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n\n")[0])
    p.add_argument("--failovers", type=int, default=10, help="leaders to kill (default 10)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load before each round (default 10)")
    p.add_argument("--signal", choices=("kill", "stop"), default="kill", help="SIGKILL (default) or SIGSTOP")
    p.add_argument("--lease", type=float, default=3.0, help="replica.lease in seconds (default 3)")
    p.add_argument("--renew", type=float, default=1.0, help="replica.renew in seconds (default 1)")
    p.add_argument("--rate", type=float, default=100.0, help="requests/s over all replicas, 0: no limit (100)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    p.add_argument("--batch", type=int, default=10, help="alerts per request (default 10)")
    p.add_argument("--new-fraction", type=float, default=0.5, help="share of new alerts in a request (0.5)")
    p.add_argument("--timeout", type=float, default=5.0, help="client timeout per request, seconds (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the rounds and the check to FILE")
    args = p.parse_args(argv)
    if args.failovers < 1 or args.duration <= 0 or args.renew >= args.lease / 2 or args.concurrency < 1:
        p.error("--failovers >= 1, --duration > 0, --renew < --lease / 2, --concurrency >= 1")
    return args


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why_not = pg.unavailable()
    if why_not:
        raise SystemExit(why_not)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    load = os.getloadavg()[0]
    if load > 0.5:
        _log(f"warning: 1-minute load average is {load:.2f} before the start: other work skews the figures")
    with tempfile.TemporaryDirectory(prefix="itsmd-failover-") as tmp:
        workdir = Path(tmp)
        db = pg.prepare_workdir(workdir)
        _log(f"database {db.name}, folder {workdir}")
        names = ("r1", "r2", "r3")
        for name in names:
            text = _REPLICA_YAML.format(dsn=workdir / "dsn", name=name, lease=args.lease, renew=args.renew,
                                        audit_key=workdir / "audit.key", digest_key=workdir / "digest.key")  # fmt: skip
            (workdir / f"{name}.yaml").write_text(text, encoding="utf-8")
            (workdir / f"{name}-data").mkdir()
        cluster = Cluster([Replica(name, free_port(), workdir) for name in names])
        try:
            return asyncio.run(run(args, cluster, db.dsn))
        except KeyboardInterrupt:
            _log("interrupted: replicas stopped, database dropped, temp files removed")
            return 130
        finally:
            for r in cluster.replicas:
                r.stop()
            try:
                pg.cleanup_workdir(workdir)
            except psycopg.Error as exc:
                _log(f"could not drop {db.name}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
