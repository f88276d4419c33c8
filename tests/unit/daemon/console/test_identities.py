"""The console's principals are the API's: named tokens at the login page, and the user a trusted proxy names."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import running, write_config

TOKEN = "rita-token-0123456789abcdef"  # noqa: S105 (a test token)


def config(tmp_path: Path, trusted: str) -> Path:
    (tmp_path / "rita.token").write_text(TOKEN)
    return write_config(
        tmp_path / "etc",
        "auth:\n"
        "  api:\n"
        f"    tokens: [{{name: rita, role: responder, token_file: {tmp_path / 'rita.token'}}}]\n"
        "  proxy:\n"
        f"    trusted_cidrs: ['{trusted}']\n"
        "    groups: {sre: responder, leads: approver}\n",
    )


async def test_a_named_token_logs_in_as_its_principal(tmp_path: Path) -> None:
    async with running(config(tmp_path, "10.0.0.0/8"), tmp_path / "data", ManualClock()) as d:
        data = {"token": TOKEN, "next": "/incidents"}
        async with d.client.post("/login", data=data, allow_redirects=False) as resp:
            assert resp.status == 303
        async with d.client.get("/incidents") as resp:
            page = await resp.text()
        assert "rita" in page and "responder" in page and "Acknowledge selected" in page


async def test_the_user_a_trusted_proxy_names_needs_no_login(tmp_path: Path) -> None:
    async with running(config(tmp_path, "127.0.0.0/8"), tmp_path / "data", ManualClock()) as d:
        headers = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "leads,other"}
        async with d.client.get("/incidents", headers=headers, allow_redirects=False) as resp:
            assert resp.status == 200
            page = await resp.text()
        assert "alice" in page and "approver" in page
        # Another user behind the same browser: the session follows whom the proxy names now.
        async with d.client.get("/incidents", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "sre"}) as resp:
            page = await resp.text()
        assert "bob" in page and "responder" in page and "alice" not in page
        async with d.client.get("/incidents", allow_redirects=False) as resp:
            # Without the proxy's headers the cookie's session (bob's, made through the proxy) still holds.
            assert resp.status == 200


async def test_proxy_headers_from_elsewhere_are_refused(tmp_path: Path) -> None:
    async with running(config(tmp_path, "10.0.0.0/8"), tmp_path / "data", ManualClock()) as d:
        headers = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "leads"}
        async with d.client.get("/incidents", headers=headers, allow_redirects=False) as resp:
            assert resp.status == 403
            assert "only accepted from the trusted proxy" in await resp.text()
