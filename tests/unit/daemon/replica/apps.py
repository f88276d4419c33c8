"""Replica apps for the role-loop tests: a small leader that writes through the fenced PostgreSQL backend, and
the real follower app; also runnable as a process (`python -m tests.unit.daemon.replica.apps`) to be frozen
and killed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from daemon.config import Config, LoadedConfig
from daemon.correlate.ruleset import RuleSet
from daemon.errors import StoreUnavailable
from daemon.replica.follower import create_follower_app
from daemon.replica.lease import Lease
from daemon.replica.metrics import ReplicaCollector
from daemon.replica.state import REPLICA, ReplicaState, fence
from daemon.replica.supervisor import Supervisor
from daemon.storage.database import Batch
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.writer import GroupCommitWriter

LOADED = LoadedConfig(path=Path("itsmd.yaml"), config=Config(), rules=RuleSet())
WRITES = web.AppKey("writes", GroupCommitWriter)
PENDING = web.AppKey("pending", list[float])


def leader_app(dsn: str) -> Callable[[ReplicaState], web.Application]:
    """A small leader: /metrics like the daemon's, and POST /write that commits one counter through a real
    group-commit writer on the PostgreSQL backend, fenced by this replica's epoch."""

    def make(state: ReplicaState) -> web.Application:
        app = web.Application()
        app[REPLICA] = state
        registry = CollectorRegistry()
        registry.register(ReplicaCollector(state))

        async def components(app: web.Application) -> AsyncIterator[None]:
            db = PostgresBackend(dsn)
            fence(db, state)
            await asyncio.to_thread(db.open)
            writer = GroupCommitWriter(db, flush_interval=0.05, on_fenced=state.on_fenced)
            pending: list[float] = []

            def collect(batch: Batch, lazy: bool) -> None:
                for value in pending:
                    batch.counters[("writes_total", state.name)] = value
                pending.clear()

            writer.add_collector(collect)
            app[WRITES] = writer
            app[PENDING] = pending
            task = asyncio.create_task(writer.run())
            yield
            writer.close()
            await asyncio.wait_for(task, 10)
            writer.shutdown_thread()
            await asyncio.to_thread(db.close)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), content_type="text/plain")

        async def write(request: web.Request) -> web.Response:
            writer = request.app[WRITES]
            request.app[PENDING].append(1.0)
            try:
                await writer.durable(writer.changed(), within=5)
            except StoreUnavailable as exc:
                return web.json_response({"error": str(exc)}, status=503)
            return web.json_response({"written_by": state.name})

        app.cleanup_ctx.append(components)
        app.router.add_get("/metrics", metrics)
        app.router.add_post("/write", write)
        app.router.add_get("/role", role)
        return app

    return make


async def role(request: web.Request) -> web.Response:
    return web.json_response({"role": "leader", "name": request.app[REPLICA].name})


def follower_app(dsn: str, renew: float) -> Callable[[ReplicaState], web.Application]:
    return lambda state: create_follower_app(
        LOADED, state, dsn=dsn, lease_ttl=renew, collectors=(ReplicaCollector(state),)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def supervisor(dsn: str, name: str, port: int, *, lease: float, renew: float, margin: float) -> Supervisor:
    state = ReplicaState(name=name, url=f"http://127.0.0.1:{port}")
    return Supervisor(
        Lease(dsn, holder=name, url=state.url, duration=lease, margin=margin, timeout=1.0),
        state,
        leader_app=leader_app(dsn),
        follower_app=follower_app(dsn, renew),
        host="127.0.0.1",
        port=port,
        renew=renew,
        shutdown_timeout=5.0,
    )


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sup = supervisor(args.dsn, args.name, args.port, lease=args.lease, renew=args.renew, margin=args.renew / 2)
    await sup.run(stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--renew", type=float, default=0.5)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(parser.parse_args()))
