"""Assignment in the console against the real app: the detail page's assign forms (to me, to a name and a team,
unassign) for responders only, and the list's Assignee column and its assignee and team filters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.console.test_pages import csrf_of, login, text
from tests.unit.daemon.ingest.conftest import Daemon, running

READ_TOKEN = "viewer-token-0123456789"  # noqa: S105 (a test token)
WRITE_TOKEN = "admin-token-0123456789"  # noqa: S105 (a test token)
# The console logs in with the legacy tokens only (read-token-1 a viewer, write-token-1 an admin); an admin may
# do all a responder may.
WRITER = "write-token-1"
SERVICES = "services:\n  - name: checkout\n    team: shop\n  - name: db\n    team: dba\n"


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    write(etc / "rules" / "services.yaml", SERVICES)
    write(etc / "rules" / "correlation.yaml", "{}\n")
    write(etc / "read.token", READ_TOKEN)
    write(etc / "write.token", WRITE_TOKEN)
    auth = "auth:\n  api:\n    read_tokens: [{token_file: read.token}]\n    write_tokens: [{token_file: write.token}]\n"
    config = write(etc / "itsmd.yaml", "rules_dir: rules\n" + auth)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


async def fire(d: Daemon, service: str, alertname: str) -> None:
    labels = {"alertname": alertname, "service": service, "severity": "critical"}
    status, _ = await d.post("/api/v2/alerts", [{"labels": labels}])
    assert status == 200


async def post(d: Daemon, incident: int, **data: str) -> str:
    """A form post as the browser sends it; the page it is sent back to, with the message shown once."""
    page = await text(d, f"/incidents/{incident}")
    async with d.client.post(
        f"/incidents/{incident}/act", data={"csrf": csrf_of(page), **data}, allow_redirects=False
    ) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == f"/incidents/{incident}"
    return await text(d, f"/incidents/{incident}")


def ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-id="(\d+)"', page)]


def assignees(page: str) -> dict[int, str]:
    rows = re.findall(r'<tr data-id="(\d+)".*?<td class="assignee">([^<]*)</td>', page, re.S)
    return {int(n): who for n, who in rows}


async def test_a_viewer_gets_no_assign_form_and_is_refused(console: Daemon) -> None:
    await fire(console, "checkout", "Down")
    await login(console, READ_TOKEN)
    page = await text(console, "/incidents/1")
    assert "Assign to me" not in page and 'value="assign"' not in page
    assert "<dt>assignee</dt><dd>nobody</dd>" in page and "<dt>team</dt><dd>shop</dd>" in page
    data = {"csrf": csrf_of(page), "action": "assign", "assignee": "me"}
    async with console.client.post("/incidents/1/act", data=data, allow_redirects=False) as resp:
        assert resp.status == 403
    incident = await console.get_json("/api/v1/incidents/1", expect=401)
    assert incident["reason"] == "unauthorized"


async def test_a_writer_assigns_to_me_to_a_name_and_team_and_unassigns(console: Daemon) -> None:
    await fire(console, "checkout", "Down")
    await login(console, WRITE_TOKEN)
    page = await text(console, "/incidents/1")
    assert "Assign to me</button>" in page and "Unassign</button>" not in page
    assert '<option value="">keep the team (shop)</option><option>dba</option><option>shop</option>' in page

    shown = await post(console, 1, action="assign", assignee="me")
    assert f"incident 1 assigned to {WRITER} (team shop)" in shown
    assert f"assigned to {WRITER} (shop)" in shown and f"<dt>assignee</dt><dd>{WRITER}</dd>" in shown
    assert f"assigned</b> by {WRITER}" in shown and "Unassign</button>" in shown

    shown = await post(console, 1, action="assign", assignee="alice", team="dba", reason="db side")
    assert "incident 1 assigned to alice (team dba)" in shown
    shown = await post(console, 1, action="assign", assignee="", team="shop")
    assert "incident 1 assigned to alice (team shop)" in shown

    shown = await post(console, 1, action="unassign")
    assert "incident 1 unassigned (team shop)" in shown and "<dt>assignee</dt><dd>nobody</dd>" in shown
    assert f"unassigned</b> by {WRITER}" in shown

    shown = await post(console, 1, action="assign", assignee='<img src=x onerror="alert(1)">')
    assert "<img src=x" not in shown and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in shown
    listed = await text(console, "/incidents")
    assert "<img src=x" not in listed and "&lt;img src=x" in listed
    shown = await post(console, 1, action="unassign")

    shown = await post(console, 1, action="assign", assignee="bob", team="nope")
    assert "no service in the catalogue has team &#39;nope&#39;; teams: dba, shop" in shown
    shown = await post(console, 1, action="assign", assignee="", team="")
    assert "give a name, or a team, to assign to" in shown
    assert "<dt>assignee</dt><dd>nobody</dd>" in shown


async def test_a_script_gets_json_and_the_reason(console: Daemon) -> None:
    await fire(console, "checkout", "Down")
    await login(console, WRITE_TOKEN)
    csrf = csrf_of(await text(console, "/incidents/1"))
    headers = {"Accept": "application/json"}
    data = {"csrf": csrf, "action": "assign", "assignee": "none"}
    async with console.client.post("/incidents/1/act", data=data, headers=headers) as resp:
        assert resp.status == 400
        answer = await resp.json()
        assert answer["ok"] is False and "'none' is reserved" in answer["message"]
    data["assignee"] = "me"
    async with console.client.post("/incidents/1/act", data=data, headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "message": f"incident 1 assigned to {WRITER} (team shop)"}


async def test_the_list_shows_assignees_and_filters_on_them(console: Daemon) -> None:
    for n, service in enumerate(("checkout", "db", "checkout", "db")):
        await fire(console, service, f"Down{n}")
    await login(console, WRITE_TOKEN)
    await post(console, 1, action="assign", assignee="me")
    await post(console, 2, action="assign", assignee="alice")
    await post(console, 3, action="assign", assignee="", team="dba")

    page = await text(console, "/incidents")
    assert "<th>Assignee</th>" in page
    assert assignees(page) == {4: "-", 3: "-", 2: "alice", 1: WRITER}
    assert '<option value="me">assigned to me</option><option value="none">unassigned</option>' in page
    assert f'<option value="alice">alice</option><option value="{WRITER}">{WRITER}</option>' in page
    assert ids(await text(console, "/incidents?assignee=me")) == [1]
    assert 'value="me" selected' in await text(console, "/incidents?assignee=me")
    assert ids(await text(console, "/incidents?assignee=none")) == [4, 3]
    assert ids(await text(console, "/incidents?assignee=alice")) == [2]
    assert ids(await text(console, "/incidents?team=dba")) == [4, 3, 2]
    assert ids(await text(console, "/incidents?team=dba&assignee=none")) == [4, 3]
    assert ids(await text(console, "/incidents?team=shop")) == [1]
    # A name nobody has yet stays selected (and matches nothing); one no principal could have is shown as a problem.
    page = await text(console, "/incidents?assignee=zoe")
    assert ids(page) == [] and '<option value="zoe" selected>zoe</option>' in page
    page = await text(console, "/incidents?assignee=a%09b")
    assert "assignee must be a name" in page and ids(page) == [4, 3, 2, 1]
