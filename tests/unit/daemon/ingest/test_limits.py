"""Ingest limits: each refusal has its status, reason and counter, stores nothing, and busy senders are told
when to come back (429/503 with Retry-After) rather than dropped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psycopg
import pytest

from daemon.api import keys
from daemon.clock import ManualClock
from daemon.storage.database import Database
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Backend
from integrations.alertmanager.fingerprint import fingerprint
from tests.postgres import ADMIN_DSN, ON_POSTGRES
from tests.unit.daemon.ingest.conftest import epoch, running, write_config

LIMITS = """
ingest:
  max_alerts_per_request: 3
  max_labels_per_alert: 4
  max_label_value_bytes: 4000
  max_annotation_value_bytes: 8000
"""


def clock() -> ManualClock:
    return ManualClock(start=epoch("2026-11-23T18:15:50Z"))


def alert(i: int = 0, **extra: str) -> dict[str, object]:
    return {"labels": {"alertname": "L", "instance": str(i), **extra}}


async def test_limits_refuse_whole_requests_and_count(tmp_path: Path) -> None:
    async with running(write_config(tmp_path / "etc", LIMITS), tmp_path / "data", clock()) as d:
        cases = [
            ([alert(i) for i in range(4)], 413, "too_many_alerts"),
            ([alert(0, a="1", b="2", c="3")], 400, "limit_exceeded"),
            ([alert(0, big="€" * 1400)], 400, "limit_exceeded"),  # 1400 characters, 4200 bytes
            ([alert(0), {**alert(1), "annotations": {"d": "x" * 8001}}], 400, "limit_exceeded"),
            ([{"labels": {"a" * 257: "x"}}], 400, "invalid_labels"),
        ]
        for body, status, reason in cases:
            code, answer = await d.v2(body)
            assert (code, answer["reason"]) == (status, reason), answer
        assert await d.alerts() == []
        rejected = await d.rejected()
        assert rejected["too_many_alerts"] == 4
        assert rejected["limit_exceeded"] == 4
        # At the limits exactly, everything is accepted.
        code, _ = await d.v2([alert(i, big="€" * 1333) for i in range(3)])
        assert code == 200
        assert len(await d.alerts()) == 3


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc", "ingest:\n  rate_limit: 0.5\n  rate_burst: 2\n")
    async with running(config, tmp_path / "data", clock()) as d:
        assert (await d.v2([alert(1)]))[0] == 200
        assert (await d.v2([alert(2)]))[0] == 200
        async with d.client.post("/api/v2/alerts", json=[alert(3)]) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
            assert (await resp.json())["reason"] == "rate_limited"
        assert (await d.rejected())["rate_limited"] == 1
        assert len(await d.alerts()) == 2
        async with d.client.get("/api/v1/alerts") as resp:  # reads are not ingest: not limited
            assert resp.status == 200


async def test_full_write_queue_answers_503_and_applies_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daemon.storage.writer")
    config = write_config(tmp_path / "etc", "ingest:\n  max_pending_changes: 1\n  commit_timeout: 300ms\n")
    async with running(config, tmp_path / "data", clock()) as d:
        app = d.client.app
        assert app is not None
        pipeline = app[keys.PIPELINE]
        # Fault injection: the store stops accepting writes, as on a full or read-only disk.
        refuse_writes(pipeline.writer._db)
        async with d.client.post("/api/v2/alerts", json=[alert(1)]) as resp:
            assert resp.status == 503
            assert (await resp.json())["reason"] == "store_unavailable"
            assert "Retry-After" in resp.headers
        async with d.client.post("/api/v2/alerts", json=[alert(2)]) as resp:
            assert resp.status == 503
            assert (await resp.json())["reason"] == "queue_full"
            assert "Retry-After" in resp.headers
        assert pipeline.alerts.get(alert_fp(2)) is None  # refused before anything was applied
        failures = [r for r in caplog.records if "store write failed" in r.getMessage()]
        assert len(failures) == 1, "one clear line when writes start failing, not one per retry"
        assert ("read-only" if ON_POSTGRES else "readonly") in failures[0].getMessage()
        rejected = await d.rejected()
        assert rejected["queue_full"] == 1
        assert rejected["store_unavailable"] == 1
        # The disk recovers: the held batch is written, and the sender's retry is accepted.
        accept_writes(pipeline.writer._db)
        deadline = asyncio.get_running_loop().time() + 10
        while (code := (await d.v2([alert(2)]))[0]) != 200:
            assert code == 503
            assert asyncio.get_running_loop().time() < deadline, "the store did not recover"
            await asyncio.sleep(0.05)
        assert {a["labels"]["instance"] for a in await d.alerts()} == {"1", "2"}
        assert any("store writes recovered" in r.getMessage() for r in caplog.records)


def refuse_writes(backend: Backend) -> None:
    """Fault injection: the store stops accepting writes, as on a full or read-only disk. Called while the
    writer is idle (nothing posted yet), so the setting is not inside one of its transactions."""
    if isinstance(backend, PostgresBackend):
        backend.primary.scalar("SET default_transaction_read_only = on")
    else:
        assert isinstance(backend, Database)
        backend.conn.execute("PRAGMA query_only = ON")


def accept_writes(backend: Backend) -> None:
    """The store recovers. PostgreSQL: the writer's session is ended from outside (the writer may be inside a
    failing transaction whose rollback would undo a SET), and the writer's new session writes again."""
    if isinstance(backend, PostgresBackend):
        pid = backend.primary.scalar("SELECT pg_backend_pid()")
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    else:
        assert isinstance(backend, Database)
        backend.conn.execute("PRAGMA query_only = OFF")


def alert_fp(i: int) -> str:
    labels = alert(i)["labels"]
    assert isinstance(labels, dict)
    return fingerprint(labels)
