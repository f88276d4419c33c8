"""The console's run, change and runbook pages against the real app with runbooks: roles, CSRF, approving a
waiting run, separation of duties shown, dry runs that store nothing, refused params, hostile step output."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import TERMINAL, write_setup
from tests.unit.daemon.console.test_pages import csrf_of, login
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running

VIEWER = "viewer-token-0123456789"
ADMIN = "admin-token-0123456789"
OTHER_ADMIN = "second-admin-token-0123456789"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
AUTH = """\
auth:
  api:
    read_tokens: [{token_file: viewer.token}]
    write_tokens: [{token_file: admin.token}, {token_file: other.token}]
console: {idle_timeout: 1h}
"""


def runbooks(out: Path) -> dict[str, str]:
    return {
        "gated": f"""
            name: gated
            description: needs a second person
            change: {{type: normal, risk: high}}
            approval: {{required: true, timeout: 1h, message: "restart {{{{ params.host }}}}?"}}
            params:
              host: {{pattern: '^[a-z0-9][a-z0-9.-]*$'}}
            steps:
              - name: shout
                exec:
                  argv:
                    - sh
                    - -c
                    - 'printf "%s" "$1"; echo "$2" >> {out}'
                    - sh
                    - '{HOSTILE}'
                    - "{{{{ params.host }}}}"
            """,
        "plain": f"""
            name: plain
            params:
              tag: {{pattern: '(?P<t>x+)', default: x}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo plain >> {out}']}}
            """,
    }


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    config = write_setup(etc, runbooks(tmp_path / "out.txt"), AUTH)
    for name, token in (("viewer", VIEWER), ("admin", ADMIN), ("other", OTHER_ADMIN)):
        (etc / f"{name}.token").write_text(token)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


async def get(d: Daemon, path: str, expect: int = 200) -> str:
    async with d.client.get(path, allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == expect, body
        return body


async def post(d: Daemon, path: str, data: dict[str, str], expect: int = 303) -> str:
    async with d.client.post(path, data=data, allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == expect, body
        return resp.headers.get("Location", "") if expect == 303 else body


async def api(d: Daemon, path: str) -> Any:
    async with d.client.get(path, headers={"Authorization": f"Bearer {VIEWER}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def status_becomes(d: Daemon, run_id: int, *wanted: str) -> Any:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen["run"] = await api(d, f"/api/v1/runs/{run_id}")
        return bool(seen["run"]["status"] in (set(wanted) or TERMINAL))

    await eventually(reached, 20)
    return seen["run"]


async def start(d: Daemon, runbook: str, **fields: str) -> str:
    csrf = csrf_of(await get(d, f"/runbooks/{runbook}"))
    return await post(d, f"/runbooks/{runbook}", {"csrf": csrf, "do": "start", **fields})


async def test_every_page_renders_and_the_nav_links_them(daemon: Daemon) -> None:
    await login(daemon, VIEWER)
    for path in ("/problems", "/changes", "/runs", "/runbooks", "/runbooks/gated", "/runbooks/plain"):
        page = await get(daemon, path)
        assert "<!doctype html>" in page
    nav = await get(daemon, "/runs")
    for href in ("/problems", "/changes", "/runs", "/runbooks"):
        assert f'<a href="{href}"' in nav
    assert 'body data-live="runs"' in nav
    await get(daemon, "/runs/99", expect=404)
    await get(daemon, "/changes/99", expect=404)
    await get(daemon, "/runbooks/nope", expect=404)
    assert "is not one of" in await get(daemon, "/runs?status=bogus")


async def test_a_viewer_sees_no_buttons_and_is_refused_when_it_posts(daemon: Daemon) -> None:
    await login(daemon, ADMIN)
    location = await start(daemon, "gated", **{"param.host": "web-1"})
    run_id = int(location.rsplit("/", 1)[1])
    await status_becomes(daemon, run_id, "waiting_approval")
    await login(daemon, VIEWER)
    page = await get(daemon, f"/runs/{run_id}")
    assert "Approve</button>" not in page and "Cancel run</button>" not in page
    form = await get(daemon, "/runbooks/gated")
    assert "Start</button>" not in form and "Dry run</button>" not in form
    csrf = csrf_of(page)
    for verb in ("approve", "reject", "cancel"):
        refused = await post(daemon, f"/runs/{run_id}/{verb}", {"csrf": csrf}, expect=403)
        assert "role viewer" in refused
    refused = await post(daemon, "/runbooks/gated", {"csrf": csrf, "do": "start", "param.host": "a"}, expect=403)
    assert "needs admin" in refused
    assert (await api(daemon, f"/api/v1/runs/{run_id}"))["status"] == "waiting_approval"


async def test_without_the_csrf_token_nothing_is_decided(daemon: Daemon) -> None:
    await login(daemon, ADMIN)
    run_id = int((await start(daemon, "gated", **{"param.host": "web-1"})).rsplit("/", 1)[1])
    await status_becomes(daemon, run_id, "waiting_approval")
    await login(daemon, OTHER_ADMIN)
    assert "CSRF" in await post(daemon, f"/runs/{run_id}/approve", {"reason": "ok"}, expect=403)
    assert "CSRF" in await post(daemon, f"/runs/{run_id}/approve", {"csrf": "forged"}, expect=403)
    csrf = csrf_of(await get(daemon, f"/runs/{run_id}"))
    cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    async with daemon.client.post(f"/runs/{run_id}/approve", data={"csrf": csrf}, headers=cross) as resp:
        assert resp.status == 403
    assert "CSRF" in await post(daemon, "/runbooks/plain", {"do": "start"}, expect=403)
    assert (await api(daemon, f"/api/v1/runs/{run_id}"))["status"] == "waiting_approval"
    assert len((await api(daemon, "/api/v1/runs"))["runs"]) == 1


async def test_the_requester_is_refused_by_name_and_another_approves(daemon: Daemon, tmp_path: Path) -> None:
    await login(daemon, ADMIN)
    location = await start(daemon, "gated", **{"param.host": "web-1", "reason": "disk full"})
    run_id = int(location.rsplit("/", 1)[1])
    assert location == f"/runs/{run_id}"
    waiting = await status_becomes(daemon, run_id, "waiting_approval")
    assert waiting["requested_by"] == "write-token-1"
    page = await get(daemon, location)
    assert "started: " in page  # the flash of the start
    assert "restart web-1?" in page and "any approver or admin" in page
    assert "Approve</button>" in page and "Cancel run</button>" in page
    # The one who asked may not approve: the page says which rule refused it, and the run still waits.
    assert await post(daemon, f"/runs/{run_id}/approve", {"csrf": csrf_of(page), "reason": "mine"}) == location
    page = await get(daemon, location)
    assert "separation of duties: write-token-1 requested this change and may not approve it" in page
    assert (await api(daemon, f"/api/v1/runs/{run_id}"))["status"] == "waiting_approval"

    await login(daemon, OTHER_ADMIN)
    page = await get(daemon, location)
    await post(daemon, f"/runs/{run_id}/approve", {"csrf": csrf_of(page), "reason": "looks right"})
    done = await status_becomes(daemon, run_id)
    assert done["status"] == "succeeded", done["reason"]
    assert done["approval"]["by"] == "write-token-2" and done["approval"]["reason"] == "looks right"
    assert (tmp_path / "out.txt").read_text() == "web-1\n"
    page = await get(daemon, location)
    assert f"run {run_id} approved" in page
    assert "approve by write-token-2" in page or "approved by write-token-2" in page
    assert "Approve</button>" not in page and "Cancel run</button>" not in page
    assert re.search(r'<li class="step succeeded" data-index="0" data-status="succeeded">', page)
    # The step's output came from a command: text in a <pre>, never markup.
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page

    change_id = done["change_id"]
    assert f'<a href="/changes/{change_id}">change {change_id}</a>' in page

    # The run's end is held in memory at once; the change's outcome is read from the store once committed.
    async def listed() -> bool:
        return f'<tr data-id="{change_id}">' in await get(daemon, "/changes?outcome=successful")

    await eventually(listed)
    assert f'<tr data-id="{change_id}">' not in await get(daemon, "/changes?status=open")
    change = await get(daemon, f"/changes/{change_id}")
    assert f'<a href="/runs/{run_id}">run {run_id}</a>' in change and "disk full" in change
    runs = await get(daemon, "/runs?status=succeeded&runbook=gated")
    assert f'<tr data-id="{run_id}">' in runs
    assert f'<tr data-id="{run_id}">' not in await get(daemon, "/runs?status=active")


async def test_reject_and_cancel_take_a_reason(daemon: Daemon) -> None:
    await login(daemon, ADMIN)
    first = int((await start(daemon, "gated", **{"param.host": "a"})).rsplit("/", 1)[1])
    second = int((await start(daemon, "gated", **{"param.host": "b"})).rsplit("/", 1)[1])
    for run_id in (first, second):
        await status_becomes(daemon, run_id, "waiting_approval")
    csrf = csrf_of(await get(daemon, f"/runs/{first}"))
    await post(daemon, f"/runs/{second}/cancel", {"csrf": csrf, "reason": "wrong host"})
    assert (await status_becomes(daemon, second))["reason"] == "cancelled by write-token-1: wrong host"
    await login(daemon, OTHER_ADMIN)
    csrf = csrf_of(await get(daemon, f"/runs/{first}"))
    await post(daemon, f"/runs/{first}/reject", {"csrf": csrf, "reason": "not now"})
    rejected = await status_becomes(daemon, first)
    assert (rejected["status"], rejected["approval"]["reason"]) == ("rejected", "not now")
    await post(daemon, f"/runs/{first}/approve", {"csrf": csrf})
    assert "not waiting for approval" in await get(daemon, f"/runs/{first}")


async def test_a_dry_run_shows_the_plan_and_stores_nothing(daemon: Daemon, tmp_path: Path) -> None:
    await login(daemon, ADMIN)
    form = await get(daemon, "/runbooks/gated")
    assert 'name="param.host"' in form and "^[a-z0-9][a-z0-9.-]*$" in form
    page = await post(
        daemon, "/runbooks/gated", {"csrf": csrf_of(form), "do": "dry_run", "param.host": "web-9"}, expect=200
    )
    assert 'id="plan"' in page and "nothing was executed" in page
    assert "restart web-9?" in page and "shout" in page
    assert "&lt;script&gt;alert(1)" in page and "<script>alert(1)" not in page
    assert 'value="web-9"' in page  # the form keeps what was typed
    assert (await api(daemon, "/api/v1/runs"))["runs"] == []
    assert (await api(daemon, "/api/v1/changes"))["changes"] == []
    assert not (tmp_path / "out.txt").exists()


async def test_a_bad_param_is_refused_naming_the_pattern(daemon: Daemon) -> None:
    await login(daemon, ADMIN)
    csrf = csrf_of(await get(daemon, "/runbooks/gated"))
    for do in ("start", "dry_run"):
        data = {"csrf": csrf, "do": do, "param.host": "web-1; rm -rf /"}
        page = await post(daemon, "/runbooks/gated", data, expect=422)
        assert "param host=" in page and "does not match its pattern ^[a-z0-9][a-z0-9.-]*$" in page
    assert "is required" in await post(daemon, "/runbooks/gated", {"csrf": csrf, "do": "start"}, expect=422)
    page = await post(daemon, "/runbooks/gated", {"csrf": csrf, "param.host": "a", "emergency": "on"}, expect=400)
    assert "an emergency change needs a reason" in page
    page = await post(daemon, "/runbooks/gated", {"csrf": csrf, "param.host": "a", "service": "nope"}, expect=422)
    assert "is not in the catalogue" in page
    page = await post(daemon, "/runbooks/gated", {"csrf": csrf, "param.host": "a", "incident_id": "7"}, expect=422)
    assert "there is no incident 7" in page
    assert (await api(daemon, "/api/v1/runs"))["runs"] == []


async def test_the_input_carries_only_patterns_the_browser_reads_the_same(daemon: Daemon) -> None:
    await login(daemon, ADMIN)
    gated = await get(daemon, "/runbooks/gated")
    assert 'pattern="^[a-z0-9][a-z0-9.-]*$"' not in gated  # a bare "-" in a class: invalid with the v flag
    assert "hint-host" in gated
    plain = await get(daemon, "/runbooks/plain")
    assert "(?P&lt;t&gt;x+)" in plain and 'pattern="(?P' not in plain
    location = await start(daemon, "plain")
    done = await status_becomes(daemon, int(location.rsplit("/", 1)[1]))
    assert done["status"] == "succeeded" and done["params"] == {"tag": "x"}
