"""A server under test as a subprocess: start it, wait until ready, read its CPU and peak RSS, stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class ServerError(RuntimeError):
    """The server did not start, did not become ready, or died."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (the peak resident set size) of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise ServerError(f"no VmHWM in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def cpu_seconds_of(pids: list[int]) -> dict[int, float]:
    """`cpu_seconds` of each process in ``pids`` still there (a process that ended is left out)."""
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[pid] = cpu_seconds(pid)
    return out


def machine_busy_seconds() -> float:
    """CPU time all cores have spent busy since boot (``/proc/stat``: all but idle and iowait; guest is in user)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def scrape_counter(url: str, name: str) -> float | None:
    """Sum of all samples of metric ``name`` on a Prometheus text page, or None if it is not there."""
    try:
        with urllib.request.urlopen(url, timeout=5.0) as resp:  # noqa: S310 (loopback http)
            text = resp.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


class ServerProcess:
    """Context manager: the process runs in its own session (Ctrl-C reaches only us) and is always stopped."""

    def __init__(self, name: str, argv: list[str], *, port: int, log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self.name} is not started")
        return self._proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str = "/-/ready", timeout: float = 60.0) -> float:
        """Poll ``GET path`` until it answers 200; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.alive():
                raise ServerError(
                    f"{self.name} exited with {self._returncode()} before it was ready:\n{self.log_tail()}"
                )
            # OSError: refused, or HTTPError (e.g. 503 while starting up): poll again
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url(path), timeout=1.0) as resp,  # noqa: S310 (loopback http)
            ):
                if resp.status == 200:
                    return time.monotonic() - start
            time.sleep(0.05)
        raise ServerError(f"{self.name} not ready after {timeout:.0f} s ({path}):\n{self.log_tail()}")

    def wait_metric(self, name: str, value: float, timeout: float = 60.0) -> float:
        """Poll ``GET /metrics`` until metric ``name`` reads ``value`` (e.g. itsmd_leader 1); returns the seconds."""
        start = time.monotonic()
        seen: float | None = None
        while time.monotonic() - start < timeout:
            if not self.alive():
                raise ServerError(
                    f"{self.name} exited with {self._returncode()} before {name} was {value:g}:\n{self.log_tail()}"
                )
            seen = scrape_counter(self.url("/metrics"), name)
            if seen == value:
                return time.monotonic() - start
            time.sleep(0.05)
        raise ServerError(f"{self.name}: {name} still {seen} after {timeout:.0f} s, not {value:g}:\n{self.log_tail()}")

    def _returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        return proc.returncode


__all__ = [
    "ServerError",
    "ServerProcess",
    "cpu_seconds",
    "cpu_seconds_of",
    "free_port",
    "machine_busy_seconds",
    "peak_rss_bytes",
    "scrape_counter",
]
