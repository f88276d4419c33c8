"""The console's pages against the real app: login, roles, CSRF, hostile alert data, filters, bulk actions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import Daemon, running, write_config

READ_TOKEN = "viewer-token-0123456789"  # noqa: S105 (a test token)
WRITE_TOKEN = "admin-token-0123456789"  # noqa: S105 (a test token)
XSS = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def alert(**labels: str) -> dict[str, object]:
    base = {"alertname": "TargetDown", "service": "checkout", "severity": "critical", "instance": "web-1"}
    return {"labels": {**base, **labels}, "annotations": {"summary": "down"}}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Daemon]:
    (tmp_path / "read.token").write_text(READ_TOKEN)
    (tmp_path / "write.token").write_text(WRITE_TOKEN)
    config = write_config(
        tmp_path / "etc",
        "auth:\n  api:\n"
        f"    read_tokens: [{{token_file: {tmp_path / 'read.token'}}}]\n"
        f"    write_tokens: [{{token_file: {tmp_path / 'write.token'}}}]\n"
        "console: {idle_timeout: 10m}\n",
    )
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


@pytest.fixture
async def open_console(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running(write_config(tmp_path / "etc"), tmp_path / "data", ManualClock()) as d:
        yield d


async def text(d: Daemon, path: str, expect: int = 200) -> str:
    async with d.client.get(path, allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == expect, body
        return body


async def login(d: Daemon, token: str) -> None:
    async with d.client.post("/login", data={"token": token, "next": "/incidents"}, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        cookie = resp.cookies["itsmd_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"


def csrf_of(html: str) -> str:
    found = re.search(r'name="itsmd-csrf" content="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_pages_need_a_login_once_tokens_are_configured(secured: Daemon) -> None:
    async with secured.client.get("/incidents", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] in ("/login?next=%2Fincidents", "/login?next=/incidents")
    async with secured.client.post("/login", data={"token": "wrong"}, allow_redirects=False) as resp:
        assert resp.status == 401
        assert "That token is not valid." in await resp.text()
    await login(secured, READ_TOKEN)
    page = await text(secured, "/incidents")
    assert "read-token-1" in page and "viewer" in page


async def test_login_never_redirects_off_the_console(secured: Daemon) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        data = {"token": READ_TOKEN, "next": target}
        async with secured.client.post("/login", data=data, allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/incidents"


async def test_every_page_carries_the_security_headers(secured: Daemon) -> None:
    for path in ("/login", "/incidents"):
        async with secured.client.get(path, allow_redirects=False) as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["X-Frame-Options"] == "DENY"


async def test_hostile_alert_data_is_text(open_console: Daemon) -> None:
    status, _ = await open_console.v2(
        [{**alert(xss=XSS), "annotations": {"summary": XSS}, "generatorURL": "javascript:alert(3)"}]
    )
    assert status == 200
    for path in ("/incidents", "/incidents/1"):
        page = await text(open_console, path)
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "javascript:" not in page
    page = await text(open_console, "/incidents/1")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page


async def test_a_viewer_sees_no_actions_and_is_refused_when_it_posts(secured: Daemon) -> None:
    assert (await secured.v2([alert()]))[0] == 200
    await login(secured, READ_TOKEN)
    page = await text(secured, "/incidents/1")
    assert "Acknowledge</button>" not in page and "Add note" not in page
    assert "Acknowledge selected" not in await text(secured, "/incidents")
    data = {"csrf": csrf_of(page), "action": "acknowledge"}
    async with secured.client.post("/incidents/1/act", data=data, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "role viewer" in await resp.text()
    assert (await secured.get_json("/api/v1/incidents/1", expect=401))["reason"] == "unauthorized"


async def test_state_changes_need_the_csrf_token_and_the_same_origin(secured: Daemon) -> None:
    assert (await secured.v2([alert()]))[0] == 200
    await login(secured, WRITE_TOKEN)
    page = await text(secured, "/incidents/1")
    async with secured.client.post("/incidents/1/act", data={"action": "acknowledge"}, allow_redirects=False) as resp:
        assert resp.status == 403
    headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    data = {"csrf": csrf_of(page), "action": "acknowledge"}
    async with secured.client.post("/incidents/1/act", data=data, headers=headers, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "cross-site" in await resp.text()
    async with secured.client.post("/incidents/1/act", data=data, allow_redirects=False) as resp:
        assert resp.status == 303
    shown = await text(secured, "/incidents/1")
    assert "incident 1 acknowledged" in shown
    assert "acknowledged</b> by write-token-1" in shown


async def test_sessions_end_after_the_idle_timeout_and_at_logout(secured: Daemon) -> None:
    await login(secured, READ_TOKEN)
    page = await text(secured, "/incidents")
    secured.clock.advance(9 * 60)
    await text(secured, "/incidents")
    secured.clock.advance(11 * 60)
    await text(secured, "/incidents", expect=303)
    await login(secured, READ_TOKEN)
    page = await text(secured, "/incidents")
    async with secured.client.post("/logout", data={"csrf": csrf_of(page)}, allow_redirects=False) as resp:
        assert resp.status == 303
    await text(secured, "/incidents", expect=303)


async def test_bulk_acknowledge_and_resolve(open_console: Daemon) -> None:
    for n in range(3):
        assert (await open_console.v2([alert(alertname=f"Down{n}", instance=f"web-{n}")]))[0] == 200
    page = await text(open_console, "/incidents")
    csrf = csrf_of(page)
    data = [("csrf", csrf), ("action", "acknowledge"), ("id", "1"), ("id", "2"), ("back", "/incidents")]
    async with open_console.client.post("/incidents-bulk", data=data, allow_redirects=False) as resp:
        assert resp.status == 303
    assert "2 acknowledged" in await text(open_console, "/incidents")
    statuses = {
        i["id"]: i["status"] for i in (await open_console.get_json("/api/v1/incidents?status=all"))["incidents"]
    }
    assert statuses == {1: "acknowledged", 2: "acknowledged", 3: "open"}
    data = [("csrf", csrf), ("action", "resolve"), ("id", "1"), ("id", "3")]
    async with open_console.client.post("/incidents-bulk", data=data, allow_redirects=False) as resp:
        assert resp.status == 303
    # Alerts still fire: refused, with the reason, and nothing resolved.
    assert "0 resolved; 2 refused" in await text(open_console, "/incidents")
    data.append(("force", "on"))
    async with open_console.client.post("/incidents-bulk", data=data, allow_redirects=False) as resp:
        assert resp.status == 303
    assert "2 resolved" in await text(open_console, "/incidents")


async def test_filters_search_and_counts(open_console: Daemon) -> None:
    assert (await open_console.v2([alert(alertname="WebDown", instance="web-1")]))[0] == 200
    assert (await open_console.v2([alert(alertname="DbSlow", instance="db-9", severity="warning")]))[0] == 200
    assert (await open_console.v2([alert(alertname="DiskFull", service="search", instance="x", mountpoint="/")]))[
        0
    ] == 200

    def ids(page: str) -> list[int]:
        return [int(n) for n in re.findall(r'<tr data-id="(\d+)"', page)]

    assert ids(await text(open_console, "/incidents")) == [3, 2, 1]
    assert ids(await text(open_console, "/incidents?q=disk")) == [3]
    listed = (await open_console.get_json("/api/v1/incidents"))["incidents"]
    priority_of = {i["id"]: i["priority"] for i in listed}
    assert priority_of[1] != priority_of[2]
    wanted = priority_of[2]
    assert ids(await text(open_console, f"/incidents?priority={wanted}")) == [
        n for n in (3, 2, 1) if priority_of[n] == wanted
    ]
    service_of = {i["id"]: i["service"] for i in listed}
    assert service_of[3] != service_of[1]
    assert ids(await text(open_console, f"/incidents?service={service_of[3]}")) == [3]
    assert ids(await text(open_console, "/incidents?match=instance%3D~%22db-.%2A%22")) == [2]
    assert ids(await text(open_console, "/incidents?sort=oldest")) == [1, 2, 3]
    broken = await text(open_console, "/incidents?match=instance%3D~%22%28%22")
    assert "matcher:" in broken and ids(broken) == [3, 2, 1]
    assert ids(await text(open_console, "/incidents?q=100%25")) == []


async def test_keyboard_actions_get_json(open_console: Daemon) -> None:
    assert (await open_console.v2([alert()]))[0] == 200
    csrf = csrf_of(await text(open_console, "/incidents"))
    data = {"csrf": csrf, "action": "acknowledge"}
    headers = {"Accept": "application/json"}
    async with open_console.client.post("/incidents/1/act", data=data, headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "message": "incident 1 acknowledged"}
    async with open_console.client.post("/incidents/1/act", data=data, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["ok"] is False


async def test_unknown_incident_is_a_404_page(open_console: Daemon) -> None:
    page = await text(open_console, "/incidents/999", expect=404)
    assert "no incident 999" in page and "<!doctype html>" in page
