"""Authentication and authorisation on the real app (real SQLite file), and HTTPS from `itsmd run`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from tests.unit.daemon.configfiles import load_test_config
from tests.unit.daemon.selfsigned import make_cert

REPO = Path(__file__).resolve().parents[4]
INGEST_TOKEN = "ingest-s3cret-token-9f8e7d"  # noqa: S105
USER = "alertmanager"
PASSWORD = "basic-pa55word-c0ffee"  # noqa: S105
READ_TOKEN = "read-t0ken-abcdef"  # noqa: S105
WRITE_TOKEN = "write-t0ken-123456"  # noqa: S105
WRONG = "wrong-presented-credential-777"
SECRETS = (INGEST_TOKEN, PASSWORD, READ_TOKEN, WRITE_TOKEN)

INGEST_AUTH = """\
  ingest:
    token_file: ingest.token
    username: alertmanager
    password_env: ITSMD_TEST_PASSWORD
"""
API_AUTH = """\
  api:
    read_tokens:
      - token_env: ITSMD_TEST_READ
    write_tokens:
      - token_file: write.token
"""
FULL = "auth:\n" + INGEST_AUTH + API_AUTH


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def postable(alertname: str = "HighLatency") -> str:
    now = datetime.now(UTC)
    ends = (now + timedelta(minutes=10)).isoformat()
    labels = {"alertname": alertname, "service": "api", "instance": "i-1"}
    return json.dumps([{"labels": labels, "startsAt": now.isoformat(), "endsAt": ends}])


async def echo_write(request: web.Request) -> web.Response:
    return web.json_response({"written": True})


class Client:
    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.bodies: list[str] = []

    async def call(self, method: str, path: str, headers: dict[str, str] | None = None, data: str = "") -> int:
        async with self.client.request(method, path, headers=headers, data=data or None) as resp:
            text = await resp.text()
            self.bodies.append(text)
            return resp.status

    async def refused(
        self, method: str, path: str, headers: dict[str, str] | None = None, data: str = ""
    ) -> tuple[int, dict[str, Any], list[str]]:
        async with self.client.request(method, path, headers=headers, data=data or None) as resp:
            text = await resp.text()
            self.bodies.append(text)
            assert resp.content_type == "application/json", text
            return resp.status, json.loads(text), resp.headers.getall("WWW-Authenticate", [])

    async def failures(self) -> dict[str, float]:
        async with self.client.get("/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        out = {}
        for line in text.splitlines():
            if line.startswith("itsmd_auth_failures_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.split('"')[1]] = float(value)
        return out


@asynccontextmanager
async def serving(tmp_path: Path, text: str) -> AsyncIterator[Client]:
    (tmp_path / "ingest.token").write_text(INGEST_TOKEN + "\n")
    (tmp_path / "write.token").write_text(WRITE_TOKEN)
    config = tmp_path / "itsmd.yaml"
    config.write_text(text, encoding="utf-8")
    app = create_app(load_test_config(config, data_dir=tmp_path / "data"))
    app.router.add_post("/api/v1/test-write", echo_write)  # no write endpoint exists yet; the rule must hold
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Client(client)
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("ITSMD_TEST_READ", READ_TOKEN)


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[Client]:
    async with serving(tmp_path, FULL) as client:
        yield client


def assert_nothing_leaked(client: Client, *extra: str) -> None:
    for body in client.bodies:
        for secret in (*SECRETS, WRONG, *extra):
            assert secret not in body, body


# -- open by default -------------------------------------------------------------------------------------------


async def test_without_auth_every_group_is_open(tmp_path: Path) -> None:
    async with serving(tmp_path, "{}\n") as client:
        assert await client.call("POST", "/api/v2/alerts", data=postable()) == 200
        assert await client.call("GET", "/api/v1/alerts") == 200
        assert await client.call("POST", "/api/v1/test-write") == 200
        assert await client.failures() == {"ingest": 0.0, "api_read": 0.0, "api_write": 0.0}


async def test_ingest_auth_leaves_the_api_open(tmp_path: Path) -> None:
    async with serving(tmp_path, "auth:\n" + INGEST_AUTH) as client:
        assert await client.call("POST", "/api/v2/alerts", data=postable()) == 401
        assert await client.call("GET", "/api/v1/alerts") == 200
        assert await client.call("POST", "/api/v1/test-write") == 200


async def test_api_auth_leaves_ingest_open(tmp_path: Path) -> None:
    async with serving(tmp_path, "auth:\n" + API_AUTH) as client:
        assert await client.call("POST", "/api/v2/alerts", data=postable()) == 200
        assert await client.call("GET", "/api/v1/alerts") == 401


async def test_health_and_metrics_stay_open(full: Client) -> None:
    for path in ("/-/healthy", "/-/ready", "/metrics"):
        assert await full.call("GET", path) == 200, path
    assert await full.failures() == {"ingest": 0.0, "api_read": 0.0, "api_write": 0.0}


# -- ingest ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        bearer(INGEST_TOKEN),
        {"Authorization": f"bearer   {INGEST_TOKEN}  "},
        basic(USER, PASSWORD),
        {"Authorization": "BASIC " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()},
    ],
    ids=["bearer", "bearer-any-case", "basic", "basic-any-case"],
)
async def test_ingest_accepts_bearer_and_basic(full: Client, headers: dict[str, str]) -> None:
    assert await full.call("POST", "/api/v2/alerts", headers=headers, data=postable()) == 200
    capture = REPO / "tests/testdata/alertmanager/am_webhook_firing_grouped_checkout_3_alerts.json"
    webhook = json.dumps(json.loads(capture.read_text())["body"])
    assert await full.call("POST", "/webhook/alertmanager", headers=headers, data=webhook) == 200
    assert await full.failures() == {"ingest": 0.0, "api_read": 0.0, "api_write": 0.0}


REFUSED_INGEST = {
    "missing": None,
    "wrong-token": bearer(WRONG),
    "api-write-token": bearer(WRITE_TOKEN),
    "token-prefix": bearer(INGEST_TOKEN[:-1]),
    "token-longer": bearer(INGEST_TOKEN + "x"),
    "wrong-password": basic(USER, WRONG),
    "wrong-user": basic(WRONG, PASSWORD),
    "token-as-password": basic(USER, INGEST_TOKEN),
    "empty-bearer": {"Authorization": "Bearer"},
    "empty": {"Authorization": ""},
    "unknown-scheme": {"Authorization": f"Token {INGEST_TOKEN}"},
    "bare-token": {"Authorization": INGEST_TOKEN},
    "basic-not-base64": {"Authorization": f"Basic {WRONG}!!"},
    "basic-no-colon": {"Authorization": "Basic " + base64.b64encode(WRONG.encode()).decode()},
    "basic-non-ascii": {"Authorization": "Basic ÿÿÿÿ"},
    "huge": {"Authorization": "Bearer " + "x" * 5000},
}


@pytest.mark.parametrize("case", REFUSED_INGEST)
async def test_ingest_refuses_missing_wrong_or_malformed_credentials(full: Client, case: str) -> None:
    headers = REFUSED_INGEST[case]
    for path in ("/api/v2/alerts", "/webhook/alertmanager"):
        status, body, challenges = await full.refused("POST", path, headers=headers, data=postable())
        assert status == 401, body
        assert body["status"] == "error"
        assert body["reason"] == "unauthorized"
        assert "bearer token or basic auth" in body["error"]
        assert challenges == ['Bearer realm="itsmd"', 'Basic realm="itsmd", charset="UTF-8"']
    assert await full.failures() == {"ingest": 2.0, "api_read": 0.0, "api_write": 0.0}
    # nothing was stored
    status, body, _ = await full.refused("GET", "/api/v1/alerts", headers=bearer(READ_TOKEN))
    assert (status, body) == (200, {"alerts": []})
    assert_nothing_leaked(full)


async def test_only_the_configured_ingest_scheme_is_offered_and_accepted(tmp_path: Path) -> None:
    text = "auth:\n  ingest:\n    token_file: ingest.token\n"
    async with serving(tmp_path, text) as client:
        assert await client.call("POST", "/api/v2/alerts", headers=bearer(INGEST_TOKEN), data=postable()) == 200
        status, body, challenges = await client.refused("POST", "/api/v2/alerts", headers=basic(USER, INGEST_TOKEN))
        assert (status, body["error"]) == (401, "unsupported authorization scheme; this endpoint needs a bearer token")
        assert challenges == ['Bearer realm="itsmd"']
        assert_nothing_leaked(client)


async def test_other_methods_on_ingest_paths_need_credentials_too(full: Client) -> None:
    status, body, _ = await full.refused("GET", "/webhook/alertmanager")
    assert (status, body["reason"]) == (401, "unauthorized")
    status, body, _ = await full.refused("GET", "/webhook/alertmanager", headers=bearer(INGEST_TOKEN))
    assert status == 405


async def test_alertmanager_reads_are_api_reads(full: Client) -> None:
    # GET /api/v2/alerts is Alertmanager's read API (amtool alert query), not ingest.
    status, body, _ = await full.refused("GET", "/api/v2/alerts", headers=bearer(INGEST_TOKEN))
    assert (status, body["reason"]) == (401, "unauthorized")
    assert await full.call("GET", "/api/v2/alerts", headers=bearer(READ_TOKEN)) == 200
    assert await full.call("POST", "/api/v2/alerts", headers=bearer(READ_TOKEN), data=postable()) == 401


# -- api -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [READ_TOKEN, WRITE_TOKEN])
async def test_read_and_write_tokens_both_read(full: Client, token: str) -> None:
    for path in ("/api/v1/incidents", "/api/v1/alerts", "/api/v1/incidents/1", "/api/v1/alerts/0123456789abcdef"):
        assert await full.call("GET", path, headers=bearer(token)) in (200, 404), path
    assert await full.call("HEAD", "/api/v1/alerts", headers=bearer(token)) == 200
    assert await full.failures() == {"ingest": 0.0, "api_read": 0.0, "api_write": 0.0}


async def test_write_token_writes(full: Client) -> None:
    assert await full.call("POST", "/api/v1/test-write", headers=bearer(WRITE_TOKEN)) == 200


async def test_read_token_on_a_write_endpoint_is_forbidden(full: Client) -> None:
    status, body, challenges = await full.refused("POST", "/api/v1/test-write", headers=bearer(READ_TOKEN))
    assert status == 403
    assert body == {
        "status": "error",
        "reason": "forbidden",
        "error": "this endpoint needs role admin or higher; read-token-1 has role viewer",
    }
    assert challenges == []
    assert await full.failures() == {"ingest": 0.0, "api_read": 0.0, "api_write": 1.0}
    assert_nothing_leaked(full)


@pytest.mark.parametrize(
    "headers",
    [None, bearer(WRONG), bearer(INGEST_TOKEN), basic(USER, PASSWORD), {"Authorization": "Bearer"}],
    ids=["missing", "wrong", "ingest-token", "basic", "malformed"],
)
async def test_api_refuses_without_an_api_token(full: Client, headers: dict[str, str] | None) -> None:
    for method, path in [
        ("GET", "/api/v1/alerts"),
        ("HEAD", "/api/v1/incidents"),
        ("GET", "/api/v1/no-such-thing"),  # no probing for what exists
        ("GET", "/api/v1/%61lerts"),  # the route decides, not the spelling
        ("POST", "/api/v1/test-write"),
        ("DELETE", "/api/v1/alerts"),
    ]:
        async with full.client.request(method, path, headers=headers) as resp:
            text = await resp.text()
            full.bodies.append(text)
            assert resp.status == 401, (method, path, text)
            assert resp.headers.getall("WWW-Authenticate") == ['Bearer realm="itsmd"']
            if method != "HEAD":
                body = json.loads(text)
                assert body["reason"] == "unauthorized"
    assert await full.failures() == {"ingest": 0.0, "api_read": 4.0, "api_write": 2.0}
    assert_nothing_leaked(full)


async def test_failures_are_counted_and_persist_as_counters(full: Client) -> None:
    for _ in range(3):
        await full.call("POST", "/api/v2/alerts", headers=bearer(WRONG), data=postable())
    await full.call("GET", "/api/v1/alerts")
    assert await full.failures() == {"ingest": 3.0, "api_read": 1.0, "api_write": 0.0}


# -- nothing secret in answers or the log ------------------------------------------------------------------------


async def test_no_secret_in_any_answer_or_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path, FULL) as client:
        await client.call("POST", "/api/v2/alerts", headers=bearer(INGEST_TOKEN), data=postable())
        await client.call("POST", "/api/v2/alerts", headers=basic(USER, PASSWORD), data=postable("Other"))
        await client.call("POST", "/api/v2/alerts", headers=basic(USER, WRONG), data=postable())
        await client.call("POST", "/api/v2/alerts", headers=bearer(WRONG), data="not json")
        await client.call("POST", "/api/v2/alerts", headers=bearer(INGEST_TOKEN), data="not json")
        for token in (READ_TOKEN, WRITE_TOKEN, WRONG):
            await client.call("GET", "/api/v1/alerts", headers=bearer(token))
            await client.call("GET", "/api/v1/incidents", headers=bearer(token))
            await client.call("POST", "/api/v1/test-write", headers=bearer(token))
        await client.call("GET", "/metrics")
        assert len(client.bodies) == 15
        assert_nothing_leaked(client)
    assert "refused" in caplog.text  # refusals are logged (at debug), without the credential
    b64 = base64.b64encode(f"{USER}:{WRONG}".encode()).decode()
    for secret in (*SECRETS, WRONG, b64):
        assert secret not in caplog.text


# -- HTTPS -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(check: Callable[[], Awaitable[None]], proc: asyncio.subprocess.Process, deadline: float) -> None:
    last: BaseException | None = None
    while time.monotonic() < deadline:
        assert proc.returncode is None, "itsmd exited early"
        try:
            await check()
            return
        except (aiohttp.ClientError, AssertionError) as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready in time: {last!r}")


async def test_run_serves_https_and_not_plain_http(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path)
    (tmp_path / "ingest.token").write_text(INGEST_TOKEN + "\n")
    port = free_port()
    config = tmp_path / "itsmd.yaml"
    config.write_text(
        "tls:\n  cert_file: cert.pem\n  key_file: key.pem\nauth:\n  ingest:\n    token_file: ingest.token\n",
        encoding="utf-8",
    )
    stderr = tmp_path / "stderr.log"
    argv = [sys.executable, "-m", "daemon", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    argv += ["--data-dir", str(tmp_path / "data"), "--log-level", "debug"]
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdout=err, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> None:
                async with session.get(f"https://127.0.0.1:{port}/-/ready", ssl=trusted) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"status": "ready"}

            await wait_for(ready, proc, time.monotonic() + 30)
            url = f"https://127.0.0.1:{port}/api/v2/alerts"
            async with session.post(url, data=postable(), ssl=trusted, headers=bearer(INGEST_TOKEN)) as resp:
                assert resp.status == 200
            async with session.post(url, data=postable(), ssl=trusted, headers=bearer(WRONG)) as resp:
                assert resp.status == 401
            # plain HTTP to the TLS port gets no answer
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/-/ready") as resp:
                    await resp.read()
            # and the certificate is checked: an untrusting client refuses it
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(f"https://127.0.0.1:{port}/-/ready") as resp:
                    await resp.read()
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    log = stderr.read_text(encoding="utf-8", errors="replace")
    assert f"listening on https://127.0.0.1:{port}" in log
    assert proc.returncode == 0, log
    for secret in (INGEST_TOKEN, WRONG):
        assert secret not in log


async def test_reload_and_incident_changes_need_a_write_token(full: Client) -> None:
    assert await full.call("POST", "/-/reload") == 401
    status, _, _ = await full.refused("POST", "/-/reload", headers=bearer(READ_TOKEN))
    assert status == 403
    assert await full.call("POST", "/-/reload", headers=bearer(WRITE_TOKEN)) == 200
    status, _, _ = await full.refused("POST", "/api/v1/incidents/1/acknowledge", headers=bearer(READ_TOKEN))
    assert status == 403
    assert await full.call("POST", "/api/v1/incidents/1/acknowledge", headers=bearer(WRITE_TOKEN)) == 404  # let in


async def test_explain_changes_nothing_so_a_read_token_may_ask(full: Client) -> None:
    body = json.dumps({"labels": {"alertname": "HighLatency", "service": "api"}})
    assert await full.call("POST", "/api/v1/explain", headers=bearer(READ_TOKEN), data=body) == 200
    assert await full.call("POST", "/api/v1/explain", headers=bearer(WRITE_TOKEN), data=body) == 200
    assert await full.call("POST", "/api/v1/explain", data=body) == 401
    assert await full.failures() == {"ingest": 0.0, "api_read": 1.0, "api_write": 0.0}
