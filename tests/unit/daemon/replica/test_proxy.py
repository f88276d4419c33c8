"""A follower forwards what is not ingest to the lease holder: a real aiohttp server stands in as the leader."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import eventually, running, write_config
from tests.unit.daemon.replica.conftest import Follower, Me, follower, inbox_rows, set_leader, sql

Json = Any


class Leader:
    """Answers with what it was sent; /stream sends one event, then a second once the test says so."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.first_sent = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/stream", self.stream)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.server = TestServer(app)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    async def echo(self, request: web.Request) -> web.Response:
        seen = {
            "method": request.method,
            "path_qs": request.path_qs,
            "body": (await request.read()).decode(),
            "headers": {k: v for k, v in request.headers.items()},
        }
        status = int(request.query.get("status", "200"))
        response = web.json_response(seen, status=status, headers={"X-Leader-Header": "kept", "Keep-Alive": "5"})
        response.set_cookie("session", "abc")
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b"event: hello\ndata: 1\n\n")
        self.first_sent.set()
        await self.release.wait()
        await response.write(b"event: hello\ndata: 2\n\n")
        return response


@pytest.fixture
async def leader() -> AsyncIterator[Leader]:
    stub = Leader()
    await stub.server.start_server()
    try:
        yield stub
    finally:
        stub.release.set()
        await stub.server.close()


@pytest.fixture
async def proxied(config_path: Path, tmp_path: Path, replica_dsn: str, leader: Leader) -> AsyncIterator[Follower]:
    set_leader(replica_dsn, "leader-a", leader.url)
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        yield f


async def test_method_path_body_and_headers_reach_the_leader_and_back(proxied: Follower) -> None:
    async with proxied.client.request(
        "PUT",
        "/api/v1/incidents/7/owner?status=201&x=a%20b",
        data=b'{"owner": "ana"}',
        headers={
            "Authorization": "Bearer secret-t0ken",
            "Content-Type": "application/json",
            "X-Custom": "1",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "hop",
            "X-Forwarded-For": "203.0.113.9",
        },
    ) as resp:
        assert resp.status == 201
        seen = await resp.json()
        assert resp.headers["X-Itsmd-Served-By"] == "follower-b"
        assert resp.headers["X-Itsmd-Leader"] == "leader-a"
        assert resp.headers["X-Leader-Header"] == "kept"
        assert "Keep-Alive" not in resp.headers
        assert "session=abc" in resp.headers["Set-Cookie"]
    assert seen["method"] == "PUT"
    assert seen["path_qs"] == "/api/v1/incidents/7/owner?status=201&x=a%20b"
    assert seen["body"] == '{"owner": "ana"}'
    headers = seen["headers"]
    assert headers["Authorization"] == "Bearer secret-t0ken"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Custom"] == "1"
    assert "X-Drop-Me" not in headers
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["X-Forwarded-Host"].startswith("127.0.0.1:")


async def test_head_is_forwarded_without_a_body(proxied: Follower) -> None:
    async with proxied.client.head("/api/v1/incidents") as resp:
        assert resp.status == 200
        assert resp.headers["X-Itsmd-Leader"] == "leader-a"
        assert int(resp.headers["Content-Length"]) > 0  # the leader's length of the GET answer
        assert await resp.read() == b""


async def test_reads_of_ingest_paths_go_to_the_leader(proxied: Follower, replica_dsn: str) -> None:
    # GET /api/v2/alerts is Alertmanager's read: forwarded; POST on the same path is ingest: kept here.
    async with proxied.client.get("/api/v2/alerts?active=true") as resp:
        assert resp.status == 200
        assert (await resp.json())["path_qs"] == "/api/v2/alerts?active=true"
    status, _, headers = await proxied.post("/api/v2/alerts", [{"labels": {"alertname": "A"}}])
    assert status == 200
    assert "X-Itsmd-Leader" not in headers
    assert len(inbox_rows(replica_dsn)) == 1


async def test_server_sent_events_stream_through(proxied: Follower, leader: Leader) -> None:
    async with proxied.client.get("/stream") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        # The first event arrives while the leader still holds the second back: streamed, not buffered.
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
        assert first == b"event: hello\ndata: 1\n\n"
        assert not leader.release.is_set()
        leader.release.set()
        second = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
        assert second == b"event: hello\ndata: 2\n\n"


async def _no_leader(f: Follower, path: str = "/api/v1/incidents") -> Json:
    async with f.client.get(path) as resp:
        assert resp.status == 503, await resp.text()
        assert int(resp.headers["Retry-After"]) >= 1
        body = await resp.json()
    assert (body["status"], body["reason"]) == ("error", "no_leader")
    return body


async def test_no_lease_holder_is_503_no_leader(
    config_path: Path, tmp_path: Path, replica_dsn: str, leader: Leader
) -> None:
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        body = await _no_leader(f)  # the row as the migration leaves it: nobody holds it
        assert body["error"] == "no replica holds the leader lease now"

    set_leader(replica_dsn, "leader-a", leader.url, ttl=-1.0)  # expired
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        body = await _no_leader(f)
        assert body["error"] == "no replica holds the leader lease now"

        async def names_itself() -> bool:
            # Read again once the cached read is older than the TTL (0.1 s here).
            return "the lease names this replica (follower-b)" in (await _no_leader(f))["error"]

        set_leader(replica_dsn, "follower-b", "http://127.0.0.1:9/")  # never forwarded to itself
        await eventually(names_itself)

        async def follows() -> bool:
            async with f.client.get("/api/v1/incidents") as resp:
                return resp.status == 200 and resp.headers.get("X-Itsmd-Leader") == "leader-a"

        set_leader(replica_dsn, "leader-a", leader.url)
        await eventually(follows)


async def test_an_unreachable_leader_is_503_no_leader(config_path: Path, tmp_path: Path, replica_dsn: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    set_leader(replica_dsn, "leader-a", f"http://127.0.0.1:{port}")
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        body = await _no_leader(f)
        assert "leader-a" in body["error"]


async def test_an_unreadable_lease_is_503_no_leader(config_path: Path, tmp_path: Path, replica_dsn: str) -> None:
    sql(replica_dsn, "DROP TABLE leader_lease")
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        body = await _no_leader(f)
        assert "lease" in body["error"]


async def test_the_itsmd_leader_answers_through_a_follower(
    config_path: Path, tmp_path: Path, replica_dsn: str, clock: ManualClock
) -> None:
    async with running(config_path, tmp_path / "leader", clock) as itsmd:
        assert (await itsmd.post_capture("am_webhook_firing_grouped_checkout_3_alerts.json"))[0] == 200
        set_leader(replica_dsn, "leader-a", str(itsmd.client.make_url("/")))
        async with follower(config_path, tmp_path / "follower", replica_dsn, Me("b", "http://b")) as f:
            direct = await itsmd.get_json("/api/v1/alerts?status=all")
            async with f.client.get("/api/v1/alerts?status=all") as resp:
                assert resp.status == 200
                assert resp.headers["X-Itsmd-Served-By"] == "b"
                assert await resp.json() == direct
            async with f.client.get("/api/v1/nothing-here") as resp:
                assert resp.status == 404  # the leader's own answer, passed on
                assert (await resp.json())["status"] == "error"
            async with f.client.get("/metrics") as resp:
                assert "itsmd_alerts_firing" not in await resp.text()


@pytest.mark.parametrize(("cidr", "forwarded"), [("10.0.0.0/8", False), ("127.0.0.1/32", True)])
async def test_sso_proxy_headers_only_from_a_trusted_peer(
    tmp_path: Path, replica_dsn: str, leader: Leader, cidr: str, forwarded: bool
) -> None:
    config = write_config(
        tmp_path / "etc", f"auth:\n  proxy:\n    trusted_cidrs: ['{cidr}']\n    default_role: viewer\n"
    )
    set_leader(replica_dsn, "leader-a", leader.url)
    async with follower(config, tmp_path / "data", replica_dsn) as f:
        resp = await f.client.get("/api/v1/incidents", headers={"X-Forwarded-User": "mallory"})
        body = await resp.json()
        if forwarded:
            assert resp.status == 200
            assert body["headers"]["X-Forwarded-User"] == "mallory"
        else:
            assert (resp.status, body["reason"]) == (403, "untrusted_proxy")
            assert "X-Itsmd-Leader" not in resp.headers
