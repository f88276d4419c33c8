"""`exec`: run a program with an argv list, no shell. Each argv element is rendered on its own, so a
param is always exactly one argument, whatever characters it holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator

from daemon.runbook.actions.base import Action, ActionSpec, Outcome, Renderer, StepContext
from daemon.runbook.digest import OutputDigest

BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")
"""The only variables a command inherits from the daemon: its environment may hold credentials."""
_READ_CHUNK = 65536


class ExecSpec(ActionSpec):
    argv: tuple[str, ...] = Field(min_length=1)
    """Program and arguments; each element is a template rendered to exactly one argument."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables (values are templates); the command gets PATH, LANG, LC_ALL, TZ and these."""
    secret_env: dict[str, str] = Field(default_factory=dict)
    """Plain: environment variable -> name of a secret in the config's runbooks.secrets. Redacted in output."""
    cwd: str | None = None
    max_output_bytes: int = Field(default=64 * 1024, gt=0)
    """Output kept (stdout and stderr together); the rest is counted and digested, not stored."""
    expect_exit: int = 0
    shell: bool = False
    """Run argv[0] with /bin/sh -c. Then argv must be one element that references no params (check refuses)."""

    @model_validator(mode="after")
    def _shell_form(self) -> ExecSpec:
        if self.shell and len(self.argv) != 1:
            raise ValueError("with shell: true, argv must be exactly one element (the script)")
        for name in (*self.env, *self.secret_env):
            if not name or "=" in name or "\x00" in name:
                raise ValueError(f"{name!r} is not a usable environment variable name")
        return self

    def build(self, render: Renderer) -> ExecAction:
        argv = tuple(render(a) for a in self.argv)
        if self.shell:
            argv = ("/bin/sh", "-c", argv[0])
        return ExecAction(
            argv=argv,
            env={k: render(v) for k, v in self.env.items()},
            secret_env=dict(self.secret_env),
            cwd=render(self.cwd) if self.cwd is not None else None,
            max_output_bytes=self.max_output_bytes,
            expect_exit=self.expect_exit,
        )


@dataclass(frozen=True)
class ExecAction(Action):
    kind: ClassVar[str] = "exec"
    argv: tuple[str, ...]
    env: Mapping[str, str]
    secret_env: Mapping[str, str]
    cwd: str | None
    max_output_bytes: int
    expect_exit: int

    def plan(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "env": dict(self.env),
            "secret_env": {k: f"<secret {v}>" for k, v in self.secret_env.items()},
            "cwd": self.cwd,
            "expect_exit": self.expect_exit,
        }

    def _environment(self, secrets: Mapping[str, str]) -> dict[str, str]:
        env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
        env.update(self.env)
        for var, name in self.secret_env.items():
            if name not in secrets:
                raise LookupError(f"secret {name!r} is not configured (runbooks.secrets)")
            env[var] = secrets[name]
        return env

    async def execute(self, ctx: StepContext) -> Outcome:
        try:
            env = self._environment(ctx.secrets)
        except LookupError as exc:
            return Outcome(False, str(exc), started=False)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                # Its own process group, so a timeout kills the command and everything it started.
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(False, f"cannot start {self.argv[0]}: {exc.strerror or exc}", started=False)
        try:
            kept, total, digest = await _read_capped(proc, self.max_output_bytes, OutputDigest(ctx.digest_key))
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())
        output = kept.decode("utf-8", errors="replace")
        if total > len(kept):
            output += f"\n[output truncated: {total} bytes, {len(kept)} kept]"
        data = {"exit_code": code, "output_bytes": total, "output_digest": digest}
        if code == self.expect_exit:
            return Outcome(True, f"exit {code}", output, data)
        return Outcome(False, f"exit {code}, expected {self.expect_exit}", output, data)


async def _read_capped(proc: asyncio.subprocess.Process, cap: int, digest: OutputDigest) -> tuple[bytes, int, str]:
    if proc.stdout is None:  # not reachable: stdout is a pipe
        return b"", 0, digest.hexdigest()
    kept = bytearray()
    total = 0
    while chunk := await proc.stdout.read(_READ_CHUNK):
        total += len(chunk)
        digest.update(chunk)
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept), total, digest.hexdigest()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
