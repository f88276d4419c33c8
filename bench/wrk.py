"""Run wrk with ``alerts.lua`` and read back the one ``BENCH_RESULT`` line its ``done()`` prints."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

WRK_BIN = "/usr/bin/wrk"
LUA_SCRIPT = Path(__file__).resolve().parent / "alerts.lua"
_MARKER = "BENCH_RESULT "


class WrkError(RuntimeError):
    """wrk failed or printed no result line."""


@dataclass(frozen=True)
class WrkResult:
    duration_s: float
    requests: int  # completed requests, whatever their status
    non2xx: int  # completed with a status outside 200-299
    socket_errors: int  # connect, read and write errors and timeouts
    sent_requests: int  # requests built by the script (includes those still in flight at the end)
    sent_alerts: int
    changes: int  # requests that changed one alert of their group
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_cpu_s: float  # CPU time wrk itself used (user + system)
    output: str  # wrk's full text output (with the --latency distribution)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def alerts_per_request(self) -> float:
        return self.sent_alerts / self.sent_requests if self.sent_requests else 0.0

    @property
    def ok_alerts_per_s(self) -> float:
        """Alerts in requests answered 2xx, per second: rejected ones do not count."""
        return (self.requests - self.non2xx) * self.alerts_per_request / self.duration_s if self.duration_s else 0.0


def run_wrk(
    url: str,
    pool_file: Path,
    *,
    duration_s: float,
    connections: int,
    change_fraction: float,
    tag: str,
    seed: int,
    timeout_s: float = 10.0,
) -> WrkResult:
    script_args = [str(pool_file), f"{change_fraction:g}", tag, str(seed)]
    return run_wrk_script(
        url, LUA_SCRIPT, script_args, duration_s=duration_s, connections=connections, timeout_s=timeout_s
    )


def run_wrk_script(
    url: str,
    script: Path,
    script_args: list[str],
    *,
    duration_s: float,
    connections: int,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk with a script that prints the ``BENCH_RESULT`` line (``alerts.lua``, ``scale.lua``)."""
    argv = [
        WRK_BIN, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", f"--timeout={timeout_s:g}s",
        "--latency", "-s", str(script), url, "--", *script_args,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + timeout_s + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode} after {time.monotonic() - started:.1f} s:\n{proc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)]
    if not lines:
        raise WrkError(f"wrk printed no {_MARKER.strip()} line:\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(lines[-1][len(_MARKER) :])
    output = "\n".join(ln for ln in proc.stdout.splitlines() if not ln.startswith(_MARKER))
    return WrkResult(
        duration_s=r["duration_us"] / 1e6,
        requests=r["requests"],
        non2xx=r["non2xx"],
        socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
        sent_requests=r["sent_requests"],
        sent_alerts=r["sent_alerts"],
        changes=r["changes"],
        p50_ms=r["p50_us"] / 1e3,
        p90_ms=r["p90_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        max_ms=r["max_us"] / 1e3,
        wrk_cpu_s=wrk_cpu,
        output=output,
    )
