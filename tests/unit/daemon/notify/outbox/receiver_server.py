"""A real HTTP receiver for webhook tests: records what it got, answers what the test says, can go down."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    status: int = 200
    got: list[Received] = field(default_factory=list)
    server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(dict(request.headers), await request.read()))
        if 300 <= self.status < 400:
            return web.Response(status=self.status, headers={"Location": "/elsewhere"})
        return web.Response(status=self.status)

    async def start(self, port: int | None = None) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        app.router.add_post("/elsewhere", self._handle)
        self.server = TestServer(app, port=port) if port else TestServer(app)
        await self.server.start_server()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
