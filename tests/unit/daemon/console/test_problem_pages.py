"""The console's problem pages against the real app: a problem from recurring outages, its list with counts,
its page with the linked incidents, and its actions through the problem manager (roles, CSRF, refusals)."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.test_manage import CORRELATION, START, iso
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.console.test_live import next_event
from tests.unit.daemon.console.test_pages import XSS, csrf_of, login
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running

VIEWER = "viewer-token-0123456789"
WRITER = "admin-token-0123456789"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    etc = tmp_path / "etc"
    write(etc / "rules" / "services.yaml", "services:\n  - name: api\n")
    write(etc / "rules" / "correlation.yaml", CORRELATION)
    write(etc / "runbooks" / "restart.yaml", "name: restart\nsteps:\n  - name: s\n    exec: {argv: ['true']}\n")
    (etc / "viewer.token").write_text(VIEWER)
    (etc / "write.token").write_text(WRITER)
    config = write(
        etc / "itsmd.yaml",
        textwrap.dedent("""\
            rules_dir: rules
            runbooks: {dir: runbooks}
            auth:
              api:
                read_tokens: [{token_file: viewer.token}]
                write_tokens: [{token_file: write.token}]
            """),
    )
    async with running(config, tmp_path / "data", ManualClock(epoch(START))) as d:
        labels = {"alertname": "Down", "service": "api", "severity": "critical", "instance": "1"}
        for _ in range(2):  # two outages of one signature within the recurrence window: a candidate problem
            started = iso(d.clock.now())
            assert (await d.v2([{"labels": labels, "startsAt": started}]))[0] == 200
            d.clock.advance(10)
            assert (await d.v2([{"labels": labels, "startsAt": started, "endsAt": iso(d.clock.now())}]))[0] == 200
            d.clock.advance(10)
        yield d


async def get(d: Daemon, path: str, expect: int = 200) -> str:
    async with d.client.get(path, allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == expect, body
        return body


async def act(d: Daemon, data: dict[str, str], expect: int = 303) -> str:
    async with d.client.post("/problems/1/act", data=data, allow_redirects=False) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.text()


async def api(d: Daemon, path: str) -> Any:
    async with d.client.get(path, headers={"Authorization": f"Bearer {VIEWER}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_the_list_counts_by_status_and_filters(daemon: Daemon) -> None:
    await login(daemon, VIEWER)
    page = await get(daemon, "/problems")
    assert '<tr data-id="1">' in page
    assert 'candidate <span class="count">1</span>' in page and 'resolved <span class="count">0</span>' in page
    assert '<tr data-id="1">' not in await get(daemon, "/problems?status=resolved")
    assert "is not one of" in await get(daemon, "/problems?status=bogus")
    assert 'body data-live="problems"' in page


async def test_a_viewer_sees_the_problem_but_no_buttons(daemon: Daemon) -> None:
    await login(daemon, VIEWER)
    page = await get(daemon, "/problems/1")
    assert '<a href="/incidents/1">#1</a>' in page and '<a href="/incidents/2">#2</a>' in page
    assert "Confirm</button>" not in page and "Record known error" not in page
    refused = await act(daemon, {"csrf": csrf_of(page), "action": "confirm"}, expect=403)
    assert "role viewer" in refused
    await get(daemon, "/problems/9", expect=404)


async def test_a_writer_confirms_records_a_known_error_and_resolves(daemon: Daemon) -> None:
    await login(daemon, WRITER)
    page = await get(daemon, "/problems/1")
    assert "Confirm</button>" in page and "<option>restart</option>" in page
    csrf = csrf_of(page)
    await act(daemon, {"action": "confirm"}, expect=403)  # no CSRF token
    assert (await api(daemon, "/api/v1/problems/1"))["status"] == "candidate"
    await act(daemon, {"csrf": csrf, "action": "confirm", "reason": "seen twice"})
    assert "problem 1 confirmed" in await get(daemon, "/problems/1")
    await act(daemon, {"csrf": csrf, "action": "confirm"})
    assert "problem 1 is confirmed: cannot confirm; allowed: known_error, resolve" in await get(daemon, "/problems/1")
    await act(daemon, {"csrf": csrf, "action": "known_error", "root_cause": "leak"})
    assert "known_error needs root_cause and workaround" in await get(daemon, "/problems/1")
    data = {"csrf": csrf, "action": "known_error", "root_cause": XSS, "workaround": "restart it", "runbook": "restart"}
    await act(daemon, data)
    page = await get(daemon, "/problems/1")
    assert "problem 1 recorded as a known error" in page
    assert "<img src=x" not in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert '<a href="/runbooks/restart">restart</a>' in page
    stored = await api(daemon, "/api/v1/problems/1")
    assert (stored["status"], stored["root_cause"], stored["workaround"], stored["runbook"]) == (
        "known_error",
        XSS,
        "restart it",
        "restart",
    )
    audit = await api(daemon, "/api/v1/audit?record_type=problem&record_id=1")
    assert [e["actor"] for e in audit["events"]][-2:] == ["write-token-1", "write-token-1"]
    await act(daemon, {"csrf": csrf, "action": "resolve"})
    assert "problem 1 resolved" in await get(daemon, "/problems/1")
    await act(daemon, {"csrf": csrf, "action": "resolve"})
    assert "problem 1 is resolved; allowed: none" in await get(daemon, "/problems/1")


async def test_a_problem_change_is_announced_to_live_pages(daemon: Daemon) -> None:
    await login(daemon, WRITER)
    csrf = csrf_of(await get(daemon, "/problems/1"))
    async with daemon.client.get("/events") as stream:
        assert (await stream.content.readline()).startswith(b"retry: ")
        await act(daemon, {"csrf": csrf, "action": "confirm"})
        event = await next_event(stream)
        while "problems" not in event:
            event = await next_event(stream)
        assert event["problems"] == [1]
