"""exec against real processes: argv without a shell, a clean environment, cwd, exit codes, capped output."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from daemon.runbook.actions.exec import ExecSpec
from tests.unit.daemon.runbook.actions.context import context, plain


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_argv_env_and_cwd(
    session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSMD_DAEMON_SECRET", "do-not-leak")
    spec = ExecSpec(
        argv=("sh", "-c", 'echo "$1|$GREETING|${ITSMD_DAEMON_SECRET:-unset}|$(pwd)"', "sh", "two words"),
        env={"GREETING": "hi"},
        cwd=str(tmp_path),
    )
    outcome = await spec.build(plain).execute(context(session))
    assert outcome.ok and outcome.summary == "exit 0"
    assert outcome.output == f"two words|hi|unset|{tmp_path}\n"  # the daemon's environment is not passed on
    assert outcome.data["exit_code"] == 0


async def test_exit_codes_and_expect_exit(session: aiohttp.ClientSession) -> None:
    failed = await ExecSpec(argv=("sh", "-c", "echo oops >&2; exit 3")).build(plain).execute(context(session))
    assert (failed.ok, failed.summary, failed.output) == (False, "exit 3, expected 0", "oops\n")
    expected = await ExecSpec(argv=("sh", "-c", "exit 3"), expect_exit=3).build(plain).execute(context(session))
    assert expected.ok


async def test_a_missing_program_fails_cleanly(session: aiohttp.ClientSession) -> None:
    outcome = await ExecSpec(argv=("/nonexistent/restart-it",)).build(plain).execute(context(session))
    assert not outcome.ok
    assert outcome.summary.startswith("cannot start /nonexistent/restart-it")


async def test_output_is_capped_and_the_whole_is_digested(session: aiohttp.ClientSession) -> None:
    spec = ExecSpec(argv=("sh", "-c", "head -c 300000 /dev/zero | tr '\\0' b"), max_output_bytes=1000)
    outcome = await spec.build(plain).execute(context(session))
    assert outcome.ok
    assert outcome.output.startswith("b" * 1000 + "\n[output truncated: 300000 bytes, 1000 kept]")
    key = b"k" * 64
    outcome = await spec.build(plain).execute(replace(context(session), digest_key=key))
    assert outcome.data["output_digest"] == "hmac-sha256:" + hmac.new(key, b"b" * 300000, hashlib.sha256).hexdigest()


async def test_secret_env_comes_from_the_configured_secrets(session: aiohttp.ClientSession) -> None:
    spec = ExecSpec(argv=("sh", "-c", 'test "$TOKEN" = tok-123'), secret_env={"TOKEN": "deploy"})
    action = spec.build(plain)
    assert action.plan()["secret_env"] == {"TOKEN": "<secret deploy>"}
    assert (await action.execute(context(session, secrets={"deploy": "tok-123"}))).ok
    missing = await action.execute(context(session))
    assert missing.summary == "secret 'deploy' is not configured (runbooks.secrets)"


def test_shell_needs_exactly_one_element() -> None:
    with pytest.raises(ValueError, match="exactly one element"):
        ExecSpec.model_validate({"argv": ["echo", "a"], "shell": True})
    action = ExecSpec.model_validate({"argv": ["echo $((1+1))"], "shell": True}).build(plain)
    assert action.plan()["argv"] == ["/bin/sh", "-c", "echo $((1+1))"]
    assert os.path.exists("/bin/sh")
