"""http and notify against a real local aiohttp server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.runbook.actions.http import HttpSpec
from daemon.runbook.actions.notify import NotifySpec
from daemon.runbook.render import RenderError, TemplateRenderer
from tests.unit.daemon.runbook.actions.context import context, plain


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, text=f"answer {request.headers.get('Authorization', '')}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    srv = TestServer(app)
    await srv.start_server()
    yield srv, seen
    await srv.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_request_with_rendered_url_headers_and_json(
    server: tuple[TestServer, list[dict[str, Any]]], session: aiohttp.ClientSession
) -> None:
    srv, seen = server
    spec = HttpSpec.model_validate(
        {
            "method": "POST",
            "url": str(srv.make_url("/drain/")) + "{{ params.host }}",
            "headers": {"X-Run": "{{ run.id }}", "Authorization": "Bearer abcd1234"},
            "json": {"host": "{{ params.host }}", "count": 2},
            "expect_status": [200, 202],
        }
    )
    action = spec.build(TemplateRenderer({"params": {"host": "web-1"}, "run": {"id": 9}}))
    assert action.plan()["headers"]["Authorization"] == "<redacted>"
    assert action.sensitive_values() == ["Bearer abcd1234"]
    outcome = await action.execute(context(session))
    assert outcome.ok, outcome.summary
    assert outcome.data["status"] == 200
    (req,) = seen
    assert (req["method"], req["path"], req["headers"]["X-Run"]) == ("POST", "/drain/web-1", "9")
    assert json.loads(req["body"]) == {"host": "web-1", "count": 2}


async def test_an_unexpected_status_fails(
    server: tuple[TestServer, list[dict[str, Any]]], session: aiohttp.ClientSession
) -> None:
    srv, _ = server
    action = HttpSpec(url=str(srv.make_url("/x?status=503"))).build(plain)
    outcome = await action.execute(context(session))
    assert not outcome.ok
    assert outcome.summary.endswith("-> 503, expected 2xx")
    listed = HttpSpec(url=str(srv.make_url("/x?status=404")), expect_status=(404,)).build(plain)
    assert (await listed.execute(context(session))).ok


async def test_a_refused_connection_is_a_failure_not_an_exception(session: aiohttp.ClientSession) -> None:
    outcome = await HttpSpec(url="http://127.0.0.1:1/nothing").build(plain).execute(context(session))
    assert not outcome.ok and "failed" in outcome.summary


def test_only_http_urls_render() -> None:
    render = TemplateRenderer({"params": {"u": "file:///etc/passwd"}})
    with pytest.raises(RenderError, match="not an http"):
        HttpSpec(url="{{ params.u }}").build(render)


async def test_notify_posts_the_rendered_json(
    server: tuple[TestServer, list[dict[str, Any]]], session: aiohttp.ClientSession
) -> None:
    srv, seen = server
    spec = NotifySpec(
        url=str(srv.make_url("/hook")),
        body={"text": "{{ params.host }} restarted", "n": [1, "{{ run.id }}"]},
        secret_headers={"Authorization": "chat"},
    )
    action = spec.build(TemplateRenderer({"params": {"host": "web-1"}, "run": {"id": 3}}))
    assert action.kind == "notify"
    outcome = await action.execute(context(session, secrets={"chat": "Bearer chat-token"}))
    assert outcome.ok
    (req,) = seen
    assert req["method"] == "POST" and req["headers"]["Authorization"] == "Bearer chat-token"
    assert json.loads(req["body"]) == {"text": "web-1 restarted", "n": [1, "3"]}
    assert action.plan()["headers"] == {"Authorization": "<secret chat>"}
