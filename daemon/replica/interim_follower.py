"""TEMPORARY scaffolding until branch `follower` lands (daemon/replica/follower.py): a follower app that only
answers for itself. It serves /metrics (itsmd_leader, itsmd_replica_info), /-/healthy, and /-/ready (503,
naming the leader); every other request gets 503 with the leader's URL, so clients retry there. The real
follower app ingests into the inbox and sends the rest to the leader; delete this file when it merges.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from daemon.api.health import CONTENT_TYPE
from daemon.config import LoadedConfig
from daemon.replica.metrics import ReplicaCollector
from daemon.replica.state import REPLICA, ReplicaState

RETRY_AFTER = "2"


def create_follower_app(loaded: LoadedConfig, state: ReplicaState) -> web.Application:
    app = web.Application(client_max_size=loaded.config.ingest.max_body_bytes)
    app[REPLICA] = state
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ReplicaCollector(state))
    ProcessCollector(registry=registry)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def not_here(request: web.Request) -> web.Response:
        body = {
            "status": 503,
            "reason": "not_leader",
            "error": f"replica {state.name} follows; the leader is {state.leader_url or 'not known yet'}",
            "leader": state.leader_url,
        }
        return web.json_response(body, status=503, headers={"Retry-After": RETRY_AFTER})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_route("*", "/{tail:.*}", not_here)
    return app
