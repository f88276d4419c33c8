"""A programmable stand-in for Prometheus or Alertmanager: a real aiohttp server on a loopback port.

Tests get it as the ``upstream`` fixture (from ``serving()``); each sets what a path answers
(``server.answer(...)``) and reads what arrived (``server.requests``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Upstream:
    server: TestServer
    session: aiohttp.ClientSession
    requests: list[Seen] = field(default_factory=list)
    handlers: dict[tuple[str, str], Handler] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown: a handler that hangs (to provoke a client timeout) waits for it."""

    def url(self, prefix: str = "") -> str:
        return str(self.server.make_url(prefix))

    def answer(
        self, method: str, path: str, status: int = 200, body: object = None, *, text: str | None = None
    ) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            if text is not None:
                return web.Response(status=status, text=text)
            return web.json_response(body, status=status)

        self.handlers[(method, path)] = handler

    def handle(self, method: str, path: str, handler: Handler) -> None:
        self.handlers[(method, path)] = handler

    def hang(self, method: str, path: str) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            await self.release.wait()
            return web.Response(status=200)

        self.handlers[(method, path)] = handler

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else {}
        self.requests.append(Seen(request.method, request.path, dict(request.query), form, body, dict(request.headers)))
        handler = self.handlers.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": "no such route in this test"}, status=404)
        return await handler(request)


@asynccontextmanager
async def serving() -> AsyncIterator[Upstream]:
    """A stand-in server on a free loopback port and a client session, for the block's duration."""
    app = web.Application()
    holder: list[Upstream] = []

    async def route(request: web.Request) -> web.StreamResponse:
        return await holder[0].dispatch(request)

    app.router.add_route("*", "/{tail:.*}", route)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        holder.append(Upstream(server, session))
        try:
            yield holder[0]
        finally:
            holder[0].release.set()
            await server.close()
