"""External tickets: PUT /api/v1/incidents/{id}/external, the CLI verb, the console, and later webhooks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running, write_config
from tests.unit.daemon.notify.outbox.harness import SECRET, SECRET_ENV
from tests.unit.daemon.notify.outbox.receiver_server import Receiver

ALERT = {"labels": {"alertname": "TargetDown", "service": "api", "instance": "a"}, "annotations": {}}
TICKET = {"system": "jira", "key": "OPS-1234", "url": "https://jira.example.com/browse/OPS-1234"}


def _config(tmp_path: Path, hook: Receiver) -> Path:
    return write_config(
        tmp_path / "etc",
        f"notify:\n  webhooks:\n    - name: hook\n      url: {hook.url}\n      secret: {{env: {SECRET_ENV}}}\n",
    )


async def _put(d: Daemon, incident_id: int, body: object) -> tuple[int, dict[str, object]]:
    async with d.client.put(f"/api/v1/incidents/{incident_id}/external", json=body) as resp:
        return resp.status, await resp.json()


async def test_an_external_ticket_is_recorded_shown_and_sent_with_later_events(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config, data = _config(tmp_path, hook), tmp_path / "data"
    async with running(config, data, ManualClock()) as d:
        assert (await d.v2([ALERT]))[0] == 200
        status, answer = await _put(d, 1, {**TICKET, "by": "jira-bot"})
        assert status == 200, answer
        assert answer["external"] == TICKET
        timeline = answer["timeline"]
        assert isinstance(timeline, list) and timeline[-1]["kind"] == "external_ticket"
        assert timeline[-1]["detail"]["on_behalf_of"] == "jira-bot"
        async with d.client.get("/incidents/1") as resp:
            page = await resp.text()
        assert 'href="https://jira.example.com/browse/OPS-1234"' in page and ">OPS-1234</a>" in page
        await d.post("/api/v1/incidents/1/acknowledge", {"reason": "on it"})
        await eventually(lambda: _got(hook, 3))
    async with running(config, data, ManualClock()) as d:  # kept across a restart
        assert (await d.incident(1))["external"] == TICKET
        audit = await d.get_json("/api/v1/audit?record_type=incident&record_id=1")
        assert any(e["action"] == "external_ticket" for e in audit["events"])
    bodies = [json.loads(g.body) for g in hook.got]
    assert [b["kind"] for b in bodies] == ["incident_opened", "incident_external", "incident_acknowledged"]
    assert bodies[0]["incident"]["external"] is None
    assert bodies[2]["incident"]["external"] == TICKET


async def test_bad_tickets_are_refused_with_a_reason(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with running(_config(tmp_path, hook), tmp_path / "data", ManualClock()) as d:
        assert (await d.v2([ALERT]))[0] == 200
        for bad, where in (
            ({**TICKET, "url": "javascript:alert(1)"}, "url"),
            ({**TICKET, "system": "has space"}, "system"),
            ({"system": "jira", "key": "OPS-1"}, "url"),
        ):
            status, answer = await _put(d, 1, bad)
            assert status == 400 and str(answer["error"]).startswith(where), answer
        status, answer = await _put(d, 99, TICKET)
        assert status == 404
        assert (await d.incident(1))["external"] is None


async def test_the_cli_records_an_external_ticket(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with running(_config(tmp_path, hook), tmp_path / "data", ManualClock()) as d:
        assert (await d.v2([ALERT]))[0] == 200
        url = str(d.client.make_url("")).rstrip("/")
        argv = ["incidents", "external", "1", "--system", "jira", "--key", "OPS-1234", "--ticket-url", TICKET["url"]]
        assert await asyncio.to_thread(main, [*argv, "--url", url]) == 0
        assert capsys.readouterr().out == "incident 1: open\n"
        assert await asyncio.to_thread(main, ["incidents", "show", "1", "--url", url]) == 0
        shown = [line.split(None, 2) for line in capsys.readouterr().out.splitlines() if line.startswith("external")]
        assert shown == [["external", "ticket", "jira OPS-1234 https://jira.example.com/browse/OPS-1234"]]
        assert (await d.incident(1))["external"] == TICKET


async def _got(hook: Receiver, n: int) -> bool:
    return len(hook.got) >= n


async def test_the_openapi_document_lists_external_tickets_and_webhooks(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with running(_config(tmp_path, hook), tmp_path / "data", ManualClock()) as d:
        paths = (await d.get_json("/api/v1/openapi.json"))["paths"]
    assert "put" in paths["/api/v1/incidents/{id}/external"]
    assert "get" in paths["/api/v1/webhooks"] and "get" in paths["/api/v1/webhooks/dead-letters"]


async def test_an_assignment_is_sent_with_the_assignee_and_team(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with running(_config(tmp_path, hook), tmp_path / "data", ManualClock()) as d:
        assert (await d.v2([ALERT]))[0] == 200
        status, answer = await d.post("/api/v1/incidents/1/assign", {"assignee": "alice"})
        assert status == 200, answer
        await eventually(lambda: _got(hook, 2))
    bodies = [json.loads(g.body) for g in hook.got]
    assert [b["kind"] for b in bodies] == ["incident_opened", "incident_assigned"]
    assert bodies[1]["incident"]["assignee"] == "alice"
