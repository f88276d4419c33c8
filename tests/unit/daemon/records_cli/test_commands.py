"""`itsmd incidents|problems|changes|runs` against the real app over HTTP (the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import until, write_setup
from tests.unit.daemon.ingest.conftest import Daemon, running

RUNBOOKS = {
    "gated": """
        name: gated
        # The open API's callers are all `anonymous`: the requester may approve only when the runbook says so.
        approval: {required: true, timeout: 1h, allow_self_approval: true}
        steps:
          - name: go
            exec: {argv: ["true"]}
        """,
}
ALERT = {
    "labels": {"alertname": "TargetDown", "service": "checkout", "severity": "critical", "instance": "web-1"},
    "annotations": {"summary": "down"},
}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    config = write_setup(tmp_path / "etc", RUNBOOKS)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


def url(d: Daemon) -> str:
    return str(d.client.make_url("")).rstrip("/")


async def cli(d: Daemon, *argv: str) -> int:
    return await asyncio.to_thread(main, [*argv, "--url", url(d)])


async def incident(d: Daemon, **labels: str) -> None:
    status, _ = await d.v2([{**ALERT, "labels": {**ALERT["labels"], **labels}}])
    assert status == 200


async def test_list_shows_an_aligned_table_of_active_incidents(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await incident(daemon)
    await incident(daemon, alertname="DiskFull", severity="warning")
    assert await cli(daemon, "incidents", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "PRI",
        "STATUS",
        "SERVICE",
        "ASSIGNEE",
        "AGE",
        "RESPOND",
        "RESOLVE",
        "ALERTS",
        "TITLE",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
    # Aligned: every row's STATUS column starts where the header's does.
    column = lines[0].index("STATUS")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines[1:])
    assert "left" in lines[1]


async def test_json_output_is_the_api_answer(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    await incident(daemon)
    assert await cli(daemon, "incidents", "list", "-o", "json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == await daemon.get_json("/api/v1/incidents")


async def test_actions_change_the_record_and_exit_codes_tell_scripts_why(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await incident(daemon)
    assert await cli(daemon, "incidents", "ack", "1", "--reason", "on it", "--by", "alice") == 0
    assert capsys.readouterr().out.strip() == "incident 1: acknowledged"
    stored = await daemon.get_json("/api/v1/incidents/1")
    assert stored["status"] == "acknowledged"
    assert stored["timeline"][-1]["kind"] == "acknowledged"
    assert await cli(daemon, "incidents", "note", "1", "checked the LB") == 0
    assert (await daemon.get_json("/api/v1/incidents/1"))["timeline"][-1]["detail"]["text"] == "checked the LB"
    # Not allowed in the state: 409 -> 1; unknown: 404 -> 3; an alert still fires: refused -> 1.
    assert await cli(daemon, "incidents", "close", "1") == 1
    assert "allowed: resolve" in capsys.readouterr().err
    assert await cli(daemon, "incidents", "show", "99") == 3
    assert await cli(daemon, "incidents", "resolve", "1") == 1
    assert "alerts_firing" in capsys.readouterr().err
    assert await cli(daemon, "incidents", "resolve", "1", "--force", "--reason", "LB drained") == 0


async def test_show_prints_the_incident_its_alerts_and_timeline(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await incident(daemon)
    assert await cli(daemon, "incidents", "show", "1") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["incident", "1"]
    assert "\nalerts\n" in out and 'instance="web-1"' in out
    assert "\ntimeline\n" in out and "opened" in out


async def test_alert_text_cannot_reach_the_terminal_as_control_sequences(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await incident(daemon, instance="\x1b[2J\x1b[31mfake\rline")
    assert await cli(daemon, "incidents", "show", "1") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "?[2J?[31mfake?line" in out


async def test_runs_approve_and_show(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    status, run = await daemon.post("/api/v1/runs", {"runbook": "gated", "by": "bob"})
    assert status == 201, run
    await until(daemon, run["id"], "waiting_approval")
    assert await cli(daemon, "runs", "list", "--status", "active") == 0
    assert "waiting_approval" in capsys.readouterr().out
    assert await cli(daemon, "runs", "approve", str(run["id"]), "--reason", "ok") == 0
    final = await until(daemon, run["id"])
    assert final["status"] == "succeeded"
    assert await cli(daemon, "runs", "show", str(run["id"])) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "\nsteps\n" in out
    assert await cli(daemon, "changes", "list") == 0
    assert "gated" in capsys.readouterr().out
    assert await cli(daemon, "changes", "show", str(final["change_id"])) == 0
    assert "\nevents\n" in capsys.readouterr().out


async def test_problems_list_when_there_are_none(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(daemon, "problems", "list", "--status", "all") == 0
    assert capsys.readouterr().out.strip() == "no problems"


async def test_unreachable_daemon_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["incidents", "list", "--url", "http://127.0.0.1:9"]) == 5
    assert "cannot reach itsmd" in capsys.readouterr().err


async def test_token_comes_from_the_environment_and_a_wrong_one_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "read.token").write_text("s3cret-read-token\n")
    config = write_setup(
        tmp_path / "etc", RUNBOOKS, f"auth:\n  api:\n    read_tokens:\n      - token_file: {tmp_path / 'read.token'}\n"
    )
    async with running(config, tmp_path / "data", ManualClock()) as d:
        monkeypatch.setenv("ITSMD_TOKEN", "wrong")
        assert await cli(d, "incidents", "list") == 4
        monkeypatch.setenv("ITSMD_TOKEN", "s3cret-read-token")
        assert await cli(d, "incidents", "list") == 0
        assert capsys.readouterr().out.strip() == "no incidents"
