"""GET /-/healthy, GET /-/ready and GET /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from daemon.api import answers, keys
from daemon.api.routes import Ok, Route

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


ROUTES = [
    Route(
        "GET",
        "/-/healthy",
        healthy,
        "Liveness: the process answers",
        {200: Ok("alive", answers.Healthy)},
        access="open",
        tags=("operations",),
    ),
    Route(
        "GET",
        "/-/ready",
        ready,
        "Readiness: started, not draining, and the store takes writes",
        {
            200: Ok("ready for traffic", answers.Ready),
            503: Ok("starting, draining or store_unavailable (with the writer's error)", answers.Ready),
        },
        access="open",
        tags=("operations",),
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics, text exposition format 0.0.4",
        {200: Ok("the metrics", {"type": "string"}, media={"text/plain": {"type": "string"}}, json=False)},
        access="open",
        tags=("operations",),
    ),
]
