"""A PostgreSQL database with the two replica tables, a follower app on it, and lease rows set by hand.

The tables are created here exactly as the PostgreSQL schema migration creates them (issue 14's DDL), so these
tests do not depend on the migration code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.registry import Collector

from daemon.config import load_config
from daemon.replica.follower import create_follower_app
from daemon.storage.postgres.backend import PostgresBackend
from tests.unit.daemon.ingest.conftest import clock, config_path

__all__ = ["clock", "config_path"]

LEASE_DDL = """
CREATE TABLE leader_lease (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT,
                           url TEXT, expires_at TIMESTAMPTZ);
INSERT INTO leader_lease (id, epoch) VALUES (1, 0);
"""
INBOX_DDL = """
CREATE TABLE inbox (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL,
                    replica TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, principal TEXT, source TEXT);
"""

Json = Any


@dataclass
class Me:
    """A replica's state as the follower reads it (daemon/replica/state.py's ReplicaState has these too)."""

    name: str
    url: str


@pytest.fixture
def replica_dsn(postgres_dsn: str) -> str:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(LEASE_DDL + INBOX_DDL)
    return postgres_dsn


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on its own connection; its rows (none for a statement without)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description is not None else []


def set_leader(dsn: str, name: str | None, url: str | None, *, ttl: float = 60.0) -> None:
    """Write the lease row as the leader's lease code does: a new epoch, holder, url, expiry (negative ttl:
    already expired)."""
    sql(
        dsn,
        "UPDATE leader_lease SET epoch = epoch + 1, holder = %s, url = %s, "
        "expires_at = now() + make_interval(secs => %s) WHERE id = 1",
        (name, url, ttl),
    )


def inbox_rows(dsn: str) -> list[tuple[Any, ...]]:
    return sql(dsn, "SELECT seq, replica, kind, body, principal, source FROM inbox ORDER BY seq")


class Follower:
    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def post(self, path: str, body: Json | bytes, **headers: str) -> tuple[int, Json, dict[str, str]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.client.post(path, data=data, headers={"Content-Type": "application/json", **headers}) as resp:
            return resp.status, await resp.json(), dict(resp.headers)


@asynccontextmanager
async def follower(
    config: Path,
    data_dir: Path,
    dsn: str,
    me: Me | None = None,
    *,
    collectors: tuple[Collector, ...] = (),
    commit_window: float = 0.002,
) -> AsyncIterator[Follower]:
    app = create_follower_app(
        load_config(config, data_dir=data_dir),
        me or Me("follower-b", "http://127.0.0.1:1"),
        dsn=dsn,
        lease_ttl=0.1,
        collectors=collectors,
        commit_window=commit_window,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Follower(client)
    finally:
        await client.close()


@pytest.fixture
def store_dsn(postgres_dsn: str) -> str:
    """A fresh database migrated by the PostgreSQL backend: its schema, its lease row at epoch 0."""
    backend = PostgresBackend(postgres_dsn)
    backend.open()
    backend.close()
    return postgres_dsn
