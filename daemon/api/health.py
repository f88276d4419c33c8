"""GET /-/healthy, GET /-/ready and GET /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from daemon.api import keys

REGISTRY = web.AppKey("registry", CollectorRegistry)
# generate_latest writes the 0.0.4 text format whatever CONTENT_TYPE_LATEST says in newer clients.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def healthy(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


async def ready(request: web.Request) -> web.Response:
    health = request.app[keys.HEALTH]
    if health.draining:
        return web.json_response({"status": "draining"}, status=503)
    if not health.started:
        return web.json_response({"status": "starting"}, status=503)
    writer = request.app[keys.PIPELINE].writer
    if not writer.healthy:
        return web.json_response({"status": "store_unavailable", "error": writer.last_error}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/metrics", metrics)
