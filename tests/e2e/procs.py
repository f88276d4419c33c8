"""A child process with its own log file: start, liveness check, log tail, SIGKILL and clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

TAIL_LINES = 60


class ProcessDied(AssertionError):
    """A managed process exited while the tests still needed it."""


class ManagedProcess:
    """One long-running child. stdout and stderr go to ``log_path``; every (re)start appends to it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._reap()
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"===== {self.name} start #{self.starts}: {' '.join(self.argv)}\n".encode())
        log.flush()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
            )
        except BaseException:
            log.close()
            raise
        self._log = log

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        """Fail with the log tail if the process has exited."""
        if self._proc is None:
            raise ProcessDied(f"{self.name} was never started")
        code = self._proc.poll()
        if code is not None:
            raise ProcessDied(f"{self.name} (pid {self._proc.pid}) exited with code {code}\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL, the way a crash or the OOM killer ends a process, and reap it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; reaps, closes the log, returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self._log is not None:
                    self._log.write(f"===== {self.name} ignored SIGTERM for {timeout:g}s: SIGKILL\n".encode())
                self._proc.kill()
        return self._reap()

    def _reap(self) -> int | None:
        code = None
        if self._proc is not None:
            code = self._proc.wait()
            self._proc = None
            if self._log is not None:
                self._log.write(f"===== {self.name} exited with code {code}\n".encode())
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - 64 * 1024))
                text = log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return f"----- {self.name}: no log at {self.log_path}"
        body = "\n".join(text.splitlines()[-lines:])
        return f"----- last {lines} lines of {self.name} ({self.log_path}):\n{body}"
