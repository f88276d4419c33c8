"""`itsmd runbook run|approve|cancel` against the real app over HTTP (the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import until, write_setup
from tests.unit.daemon.ingest.conftest import Daemon, running

RUNBOOKS = {
    "fix": """
        name: fix
        params:
          host: {pattern: '^[a-z0-9-]+$'}
        steps:
          - name: first
            exec: {argv: [echo, "{{ params.host }}"]}
          - name: second
            exec: {argv: ["true"]}
        """,
    "broken": """
        name: broken
        steps:
          - name: change
            exec: {argv: ["true"]}
            rollback: {exec: {argv: ["true"]}}
          - name: check
            exec: {argv: ["false"]}
        """,
    "gated": """
        name: gated
        approval: {required: true, timeout: 1h, allow_self_approval: true}  # the open API has one caller
        steps:
          - name: go
            exec: {argv: ["true"]}
        """,
}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    config = write_setup(tmp_path / "etc", RUNBOOKS)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


def url(d: Daemon) -> str:
    return str(d.client.make_url("")).rstrip("/")


async def cli(d: Daemon, *argv: str) -> int:
    return await asyncio.to_thread(main, ["runbook", *argv, "--url", url(d)])


async def test_run_follows_the_steps_and_exits_0_on_success(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(daemon, "run", "fix", "--param", "host=web-1", "--reason", "disk") == 0
    out = capsys.readouterr().out
    assert "run 1 of fix started" in out
    assert "step 1 first (exec): succeeded" in out
    assert "step 2 second (exec): succeeded" in out
    assert out.rstrip().splitlines()[-1].split("  ", 1)[1].startswith("run 1 succeeded")


async def test_a_rolled_back_run_exits_1_and_shows_the_rollback(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(daemon, "run", "broken") == 1
    out = capsys.readouterr().out
    assert "step 2 check (exec): failed" in out
    assert "[rollback]: succeeded" in out
    assert "run 1 rolled_back" in out


async def test_dry_run_prints_the_plan_and_runs_nothing(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(daemon, "run", "fix", "--param", "host=web-1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "nothing was executed" in out
    assert "- web-1" in out
    assert (await daemon.get_json("/api/v1/runs"))["runs"] == []


async def test_refusals_print_the_reason_and_exit_1(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(daemon, "run", "fix", "--param", "host=NOT OK") == 1
    assert await cli(daemon, "run", "fix", "--param", "host") == 1
    assert await cli(daemon, "approve", "42") == 1
    err = capsys.readouterr().err
    assert "HTTP 422" in err
    assert "host" in err
    assert "--param 'host': use NAME=VALUE" in err
    assert "HTTP 404" in err


async def test_approve_a_waiting_run_from_the_cli(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(daemon, "run", "gated", "--no-follow") == 0
    await until(daemon, 1, "waiting_approval")
    assert await cli(daemon, "approve", "1", "--by", "ann", "--reason", "go") == 0
    assert (await until(daemon, 1))["status"] == "succeeded"
    assert await cli(daemon, "cancel", "1") == 1
    captured = capsys.readouterr()
    assert "run 1 (gated): " in captured.out
    assert "HTTP 409" in captured.err


async def test_unreachable_daemon_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["runbook", "run", "x", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach itsmd at http://127.0.0.1:9" in capsys.readouterr().err
