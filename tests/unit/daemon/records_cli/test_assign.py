"""`itsmd incidents assign` and the ASSIGNEE column, against the real app over HTTP (the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.clock import ManualClock
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, running

SERVICES = "services:\n  - name: checkout\n    team: shop\n  - name: db\n    team: dba\n"
ALERT = {"labels": {"alertname": "TargetDown", "service": "checkout", "severity": "critical", "instance": "web-1"}}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    write(etc / "rules" / "services.yaml", SERVICES)
    write(etc / "rules" / "correlation.yaml", "{}\n")
    config = write(etc / "itsmd.yaml", "rules_dir: rules\n")
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


async def cli(d: Daemon, *argv: str) -> int:
    return await asyncio.to_thread(main, [*argv, "--url", str(d.client.make_url("")).rstrip("/")])


async def incident(d: Daemon, **labels: str) -> None:
    status, _ = await d.v2([{**ALERT, "labels": {**ALERT["labels"], **labels}}])
    assert status == 200


def column(out: str, name: str) -> dict[str, str]:
    """ID -> the named column of a table (cells hold no spaces here)."""
    header, *rows = out.splitlines()
    at = header.split().index(name)
    return {row.split()[0]: row.split()[at] for row in rows}


async def test_assign_to_me_to_a_name_to_a_team_and_unassign(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await incident(daemon)
    await incident(daemon, alertname="DiskFull")
    assert await cli(daemon, "incidents", "assign", "1", "--me", "--by", "pager") == 0
    # The open API's caller is `anonymous`: "me" is the principal of the token, not the login name.
    assert capsys.readouterr().out.strip() == "incident 1: assigned to anonymous (team shop)"
    assert await cli(daemon, "incidents", "assign", "2", "--to", "alice", "--reason", "db person") == 0
    assert capsys.readouterr().out.strip() == "incident 2: assigned to alice (team shop)"
    assert await cli(daemon, "incidents", "assign", "2", "--team", "dba") == 0
    assert capsys.readouterr().out.strip() == "incident 2: assigned to alice (team dba)"
    stored = await daemon.get_json("/api/v1/incidents/2")
    assert stored["timeline"][-2]["detail"]["reason"] == "db person"

    assert await cli(daemon, "incidents", "list") == 0
    assert column(capsys.readouterr().out, "ASSIGNEE") == {"2": "alice", "1": "anonymous"}
    assert await cli(daemon, "incidents", "list", "--assignee", "alice") == 0
    assert list(column(capsys.readouterr().out, "ID")) == ["2"]
    assert await cli(daemon, "incidents", "list", "--team", "shop") == 0
    assert list(column(capsys.readouterr().out, "ID")) == ["1"]

    assert await cli(daemon, "incidents", "assign", "2", "--unassign") == 0
    assert capsys.readouterr().out.strip() == "incident 2: unassigned (team dba)"
    assert await cli(daemon, "incidents", "list", "--assignee", "none") == 0
    assert column(capsys.readouterr().out, "ASSIGNEE") == {"2": "-"}
    assert await cli(daemon, "incidents", "show", "2") == 0
    shown = capsys.readouterr().out
    assert "\nteam " in shown and " dba\n" in shown and "unassigned" in shown


async def test_assign_refusals_and_usage(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    await incident(daemon)
    assert await cli(daemon, "incidents", "assign", "1") == 2
    assert "give --to NAME, --me or --unassign, and/or --team TEAM" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        await cli(daemon, "incidents", "assign", "1", "--me", "--unassign")
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert await cli(daemon, "incidents", "assign", "1", "--team", "nope") == 1
    assert "no service in the catalogue has team 'nope'; teams: dba, shop" in capsys.readouterr().err
    assert await cli(daemon, "incidents", "assign", "9", "--me") == 3
