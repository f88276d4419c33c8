"""Credentials that rotate: several valid at once, re-read at each reload, swapped whole, named never shown.

Everything runs on the real app (real SQLite file) with requests on the wire; reloads go through
`POST /-/reload` or the watcher task SIGHUP triggers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.reload import RELOADER
from tests.unit.daemon.configfiles import load_test_config
from tests.unit.daemon.ingest.conftest import eventually

OLD = "old-ingest-t0ken-aaaa1111"
NEW = "new-ingest-t0ken-bbbb2222"
ADMIN = "admin-api-t0ken-cccc3333"
OLD_PASSWORD = "old-basic-pa55-dddd4444"  # noqa: S105
NEW_PASSWORD = "new-basic-pa55-eeee5555"  # noqa: S105
VALUES = (OLD, NEW, ADMIN, OLD_PASSWORD, NEW_PASSWORD)
USES = "itsmd_auth_credential_uses_total"
LAST_USED = "itsmd_auth_credential_last_used_timestamp_seconds"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def postable(n: int) -> str:
    now = datetime.now(UTC)
    labels = {"alertname": "Rotation", "service": "api", "instance": f"i-{n % 50}"}
    ends = (now + timedelta(minutes=10)).isoformat()
    return json.dumps([{"labels": labels, "startsAt": now.isoformat(), "endsAt": ends}])


def config_text(ingest: str) -> str:
    api = "  api:\n    tokens:\n      - name: ops\n        role: admin\n        token_file: admin.token\n"
    return "auth:\n  ingest:\n" + ingest + api


def tokens(*names: str) -> str:
    return "    tokens:\n" + "".join(f"      - name: {n}\n        token_file: {n}.token\n" for n in names)


@dataclass
class Daemon:
    client: TestClient[Any, Any]
    root: Path
    sent: int = 0
    bodies: list[str] = field(default_factory=list)

    def configure(self, ingest: str) -> None:
        (self.root / "itsmd.yaml").write_text(config_text(ingest), encoding="utf-8")

    def secret(self, name: str, value: str) -> None:
        (self.root / f"{name}.token").write_text(value + "\n")

    async def ingest(self, headers: dict[str, str]) -> int:
        self.sent += 1
        async with self.client.post("/api/v2/alerts", headers=headers, data=postable(self.sent)) as resp:
            self.bodies.append(await resp.text())
            return resp.status

    async def reload(self) -> tuple[int, dict[str, Any]]:
        async with self.client.post("/-/reload", headers=bearer(ADMIN)) as resp:
            text = await resp.text()
            self.bodies.append(text)
            return resp.status, json.loads(text)

    async def metrics(self) -> dict[str, float]:
        async with self.client.get("/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        self.bodies.append(text)
        out = {}
        for line in text.splitlines():
            if line.startswith(("itsmd_auth_", "itsmd_config_last_reload_successful")):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


def uses(group: str, credential: str) -> str:
    return f'{USES}{{credential="{credential}",group="{group}"}}'


@asynccontextmanager
async def serving(tmp_path: Path, ingest: str, **secrets: str) -> AsyncIterator[Daemon]:
    (tmp_path / "admin.token").write_text(ADMIN)
    for name, value in secrets.items():
        (tmp_path / f"{name}.token").write_text(value + "\n")
    (tmp_path / "itsmd.yaml").write_text(config_text(ingest), encoding="utf-8")
    app = create_app(load_test_config(tmp_path / "itsmd.yaml", data_dir=tmp_path / "data"))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Daemon(client, tmp_path)
    finally:
        await client.close()


@dataclass
class Sender:
    """Clients posting alerts without pause, with whatever token `token` holds when each request starts."""

    daemon: Daemon
    token: str
    results: list[tuple[str, int]] = field(default_factory=list)

    def count(self, token: str) -> int:
        return sum(1 for t, _ in self.results if t == token)

    async def run(self) -> None:
        while True:
            token = self.token
            self.results.append((token, await self.daemon.ingest(bearer(token))))


async def test_rotation_with_no_gap_add_switch_remove(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path, tokens("old"), old=OLD) as daemon:
        sender = Sender(daemon, OLD)
        workers = [asyncio.create_task(sender.run()) for _ in range(4)]  # requests in flight at every reload
        try:
            await eventually(lambda: _at_least(sender, OLD, 20))
            assert await daemon.ingest(bearer(NEW)) == 401  # not configured yet

            daemon.secret("new", NEW)
            daemon.configure(tokens("old", "new"))
            assert await daemon.reload() == (200, {"status": "success"})
            assert await daemon.ingest(bearer(NEW)) == 200  # the overlap: both valid
            assert await daemon.ingest(bearer(OLD)) == 200
            target = sender.count(OLD) + 20
            await eventually(lambda: _at_least(sender, OLD, target))

            sender.token = NEW  # the clients switch over
            await eventually(lambda: _at_least(sender, NEW, 20))
            overlap = await daemon.metrics()
            assert overlap[uses("ingest", "old")] >= 20
            assert overlap[uses("ingest", "new")] >= 20
            assert f'{LAST_USED}{{credential="old",group="ingest"}}' in overlap

            daemon.configure(tokens("new"))
            assert await daemon.reload() == (200, {"status": "success"})
            assert await daemon.ingest(bearer(OLD)) == 401  # removed at the reload
            target = sender.count(NEW) + 20
            await eventually(lambda: _at_least(sender, NEW, target))
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        refused = [(t == OLD, status) for t, status in sender.results if status != 200]
        assert refused == [], f"{len(refused)} of {len(sender.results)} requests refused"
        after = await daemon.metrics()
        assert uses("ingest", "old") not in after  # a removed credential's series goes with it
        assert after[uses("ingest", "new")] >= 40
        assert after["itsmd_config_last_reload_successful"] == 1
    logged = caplog.text
    assert "added new (ingest); removed none" in logged
    assert "added none; removed old (ingest)" in logged
    for value in VALUES:
        assert value not in logged
        assert all(value not in body for body in daemon.bodies)


async def _at_least(sender: Sender, token: str, n: int) -> bool:
    return sender.count(token) >= n


async def test_a_token_file_rewritten_in_place_is_read_again_at_sighup(tmp_path: Path) -> None:
    async with serving(tmp_path, tokens("alertmanager"), alertmanager=OLD) as daemon:
        assert await daemon.ingest(bearer(OLD)) == 200
        daemon.secret("alertmanager", NEW)  # same name, new value
        assert await daemon.ingest(bearer(NEW)) == 401  # secrets are read at load, not at each request
        assert await daemon.ingest(bearer(OLD)) == 200
        reloader = daemon.client.app[RELOADER]
        before = reloader.reloads
        reloader.trigger()  # what the SIGHUP handler does

        async def reloaded() -> bool:
            return reloader.reloads > before and await daemon.ingest(bearer(NEW)) == 200

        await eventually(reloaded)
        assert reloader.successful
        assert await daemon.ingest(bearer(OLD)) == 401
        assert (await daemon.metrics())[uses("ingest", "alertmanager")] >= 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", "cannot read"),
        ("empty", "is empty"),
        ("unnamed", "auth.ingest.tokens[1].name"),
        ("twice", "two ingest credentials are named 'old'"),
        ("open", "a reload cannot turn ingest authentication off"),
        ("yaml", "itsmd.yaml"),
    ],
)
async def test_a_broken_credential_keeps_the_whole_old_set(tmp_path: Path, change: str, expected: str) -> None:
    async with serving(tmp_path, tokens("old"), old=OLD) as daemon:
        if change == "missing":
            daemon.configure(tokens("old", "new"))
        elif change == "empty":
            daemon.secret("new", "  ")
            daemon.configure(tokens("old", "new"))
        elif change == "unnamed":
            daemon.configure(tokens("old") + "      - token_file: old.token\n")
        elif change == "twice":
            daemon.configure(tokens("old", "old"))
        elif change == "open":
            daemon.configure("    {}\n")
        else:
            (tmp_path / "itsmd.yaml").write_text("auth: [\n")
        daemon.secret("old", NEW)  # a changed value that must not be taken either
        status, body = await daemon.reload()
        assert (status, body["reason"]) == (400, "invalid_rules")
        assert expected in body["error"]
        assert "still running on the last good rules, runbooks and credentials" in body["error"]
        assert await daemon.ingest(bearer(OLD)) == 200
        assert await daemon.ingest(bearer(NEW)) == 401
        assert (await daemon.metrics())["itsmd_config_last_reload_successful"] == 0


async def test_basic_auth_password_rotation_and_legacy_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_OLD_PASSWORD", OLD_PASSWORD)
    legacy = "    token_file: old.token\n    username: am\n    password_env: ITSMD_TEST_OLD_PASSWORD\n"
    async with serving(tmp_path, legacy, old=OLD) as daemon:
        assert await daemon.ingest(bearer(OLD)) == 200
        assert await daemon.ingest(basic("am", OLD_PASSWORD)) == 200
        seen = await daemon.metrics()
        assert seen[uses("ingest", "ingest-token")] == 1
        assert seen[uses("ingest", "ingest-user")] == 1

        daemon.secret("am-2", NEW_PASSWORD)
        daemon.configure(
            legacy + "    users:\n      - name: am-2\n        username: am\n        password_file: am-2.token\n"
        )
        assert await daemon.reload() == (200, {"status": "success"})
        assert await daemon.ingest(basic("am", OLD_PASSWORD)) == 200  # one user, two passwords: the overlap
        assert await daemon.ingest(basic("am", NEW_PASSWORD)) == 200
        assert await daemon.ingest(basic("other", NEW_PASSWORD)) == 401

        daemon.configure("    users:\n      - name: am-2\n        username: am\n        password_file: am-2.token\n")
        assert await daemon.reload() == (200, {"status": "success"})
        assert await daemon.ingest(basic("am", OLD_PASSWORD)) == 401
        assert await daemon.ingest(basic("am", NEW_PASSWORD)) == 200
        assert await daemon.ingest(bearer(OLD)) == 401  # the token went with the legacy fields
        after = await daemon.metrics()
        assert after[uses("ingest", "am-2")] == 2
        assert uses("ingest", "ingest-user") not in after


async def test_api_tokens_rotate_and_are_counted_by_name(tmp_path: Path) -> None:
    async with serving(tmp_path, tokens("old"), old=OLD) as daemon:
        async with daemon.client.get("/api/v1/incidents", headers=bearer(ADMIN)) as resp:
            assert resp.status == 200
        (tmp_path / "admin.token").write_text(NEW)
        assert await daemon.reload() == (200, {"status": "success"})  # authorised by the token in use
        async with daemon.client.get("/api/v1/incidents", headers=bearer(ADMIN)) as resp:
            assert resp.status == 401
        async with daemon.client.get("/api/v1/incidents", headers=bearer(NEW)) as resp:
            assert resp.status == 200
        seen = await daemon.metrics()
        assert seen[uses("api_read", "ops")] == 2
        assert seen[uses("api_write", "ops")] == 1


async def test_the_console_login_takes_the_rotated_tokens(tmp_path: Path) -> None:
    (tmp_path / "write.token").write_text(OLD)
    config = tmp_path / "itsmd.yaml"
    config.write_text("auth:\n  api:\n    write_tokens:\n      - token_file: write.token\n")
    app = create_app(load_test_config(config, data_dir=tmp_path / "data"))
    async with TestClient(TestServer(app)) as client:

        async def login(token: str) -> int:
            data = {"token": token, "next": "/incidents"}
            async with client.post("/login", data=data, allow_redirects=False) as resp:
                return resp.status

        assert await login(OLD) == 303
        async with client.get("/incidents", allow_redirects=False) as resp:
            assert resp.status == 200
        (tmp_path / "write.token").write_text(NEW)
        async with client.post("/-/reload", headers=bearer(OLD)) as resp:
            assert resp.status == 200
        # The session opened with the old token ends with it: a removed token stops working at the reload.
        async with client.get("/incidents", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith("/login")
        assert await login(NEW) == 303
        async with client.get("/incidents", allow_redirects=False) as resp:
            assert resp.status == 200
        assert await login(OLD) == 401
