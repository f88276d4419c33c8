"""A follower's ingest: committed to the inbox before the 2xx, refused exactly as the leader refuses."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable
from pathlib import Path

import psycopg
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.clock import ManualClock
from tests.postgres import ADMIN_DSN
from tests.unit.daemon.ingest.conftest import (
    MAX_BODY_BYTES,
    PROM_FIRING_UA,
    capture,
    eventually,
    parse_metrics,
    running,
    series,
    write_config,
)
from tests.unit.daemon.replica.conftest import INBOX_DDL, Follower, follower, inbox_rows, sql

WEBHOOK = "am_webhook_firing_grouped_checkout_3_alerts.json"
POSTED = "prometheus_post_api_v2_alerts_firing.json"
INGEST_TOKEN = "ingest-t0ken-for-replicas"  # noqa: S105


async def test_a_webhook_is_in_the_inbox_when_the_follower_answers(
    config_path: Path, tmp_path: Path, replica_dsn: str
) -> None:
    body = json.dumps(capture(WEBHOOK)).encode()
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        status, answer, _ = await f.post("/webhook/alertmanager", body)
        # Read right after the answer, on another connection: the row is committed, not just sent.
        rows = inbox_rows(replica_dsn)
        assert (status, answer) == (200, {"status": "success", "accepted": 3})
        assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
            ("follower-b", "alertmanager_webhook", body.decode(), None, None)
        ]
        status, answer, _ = await f.post("/api/v2/alerts", capture(POSTED), **{"User-Agent": PROM_FIRING_UA})
        assert status == 200
        assert answer["accepted"] == len(capture(POSTED))
        kind, source = inbox_rows(replica_dsn)[-1][2], inbox_rows(replica_dsn)[-1][5]
        assert (kind, source) == ("api_v2_alerts", "prometheus")


BAD_BODIES: list[tuple[str, bytes]] = [
    ("/webhook/alertmanager", b"{not json"),
    ("/webhook/alertmanager", json.dumps({**capture(WEBHOOK), "version": "3"}).encode()),
    ("/api/v2/alerts", b'[{"annotations": {}}]'),
    ("/api/v2/alerts", b'[{"labels": {"bad-name": "x"}}]'),
    ("/api/v2/alerts", json.dumps([{"labels": {"alertname": "A", "n": str(i)}} for i in range(2000)]).encode()),
    ("/api/v2/alerts", b'[{"labels": {"alertname": "' + b"x" * MAX_BODY_BYTES + b'"}}]'),
]


def _wrong_fingerprint() -> bytes:
    payload = copy.deepcopy(capture(WEBHOOK))
    payload["alerts"][0]["fingerprint"] = "0123456789abcdef"
    return json.dumps(payload).encode()


async def test_bad_bodies_get_the_leaders_answer_and_store_nothing(
    config_path: Path, tmp_path: Path, replica_dsn: str, clock: ManualClock
) -> None:
    cases = [*BAD_BODIES, ("/webhook/alertmanager", _wrong_fingerprint())]
    async with (
        running(config_path, tmp_path / "leader", clock) as leader,
        follower(config_path, tmp_path / "follower", replica_dsn) as f,
    ):
        for path, body in cases:
            expected = await leader.post(path, body)
            status, answer, _ = await f.post(path, body)
            assert expected[0] in (400, 413), expected
            assert (status, answer) == expected, path
        assert inbox_rows(replica_dsn) == []
        async with f.client.get("/metrics") as resp:
            metrics = parse_metrics(await resp.text())
        assert metrics[series("itsmd_inbox_refused_total", reason="invalid_json")] == 1
        assert metrics[series("itsmd_inbox_refused_total", reason="fingerprint_mismatch")] == 1
        assert metrics[series("itsmd_inbox_accepted_total", kind="alertmanager_webhook")] == 0


async def test_ingest_credentials_are_checked_as_on_the_leader(tmp_path: Path, replica_dsn: str) -> None:
    etc = tmp_path / "etc"
    config = write_config(etc, f"ingest:\n  max_body_bytes: {MAX_BODY_BYTES}\nauth:\n  ingest:\n    token_file: t\n")
    (etc / "t").write_text(INGEST_TOKEN, encoding="utf-8")
    (etc / "t").chmod(0o600)
    async with follower(config, tmp_path / "data", replica_dsn) as f:
        status, answer, headers = await f.post("/webhook/alertmanager", capture(WEBHOOK))
        assert (status, answer["reason"]) == (401, "unauthorized")
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, _, _ = await f.post("/webhook/alertmanager", capture(WEBHOOK), Authorization="Bearer nope")
        assert status == 401
        assert inbox_rows(replica_dsn) == []
        status, _, _ = await f.post("/webhook/alertmanager", capture(WEBHOOK), Authorization=f"Bearer {INGEST_TOKEN}")
        assert status == 200
        assert [r[4] for r in inbox_rows(replica_dsn)] == ["ingest-token"]


async def _expect_unavailable(f: Follower) -> None:
    status, answer, headers = await f.post("/webhook/alertmanager", capture(WEBHOOK))
    assert (status, answer["status"], answer["reason"]) == (503, "error", "store_unavailable"), answer
    assert int(headers["Retry-After"]) >= 1


async def test_no_acknowledgement_without_a_commit(config_path: Path, tmp_path: Path, replica_dsn: str) -> None:
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        assert (await f.post("/webhook/alertmanager", capture(WEBHOOK)))[0] == 200

        # The follower's connection killed under it: that request fails whole, the next one reconnects.
        sql(
            replica_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        await _expect_unavailable(f)
        assert len(inbox_rows(replica_dsn)) == 1
        assert (await f.post("/webhook/alertmanager", capture(WEBHOOK)))[0] == 200
        assert len(inbox_rows(replica_dsn)) == 2

        # No table to write to: refused, nothing half-stored; back once it is there.
        sql(replica_dsn, "DROP TABLE inbox")
        await _expect_unavailable(f)
        sql(replica_dsn, INBOX_DDL)
        assert (await f.post("/webhook/alertmanager", capture(WEBHOOK)))[0] == 200
        assert len(inbox_rows(replica_dsn)) == 1

        # The database takes no connections at all: ingest and readiness both say so.
        db = sql(replica_dsn, "SELECT current_database()")[0][0]
        sql(ADMIN_DSN, f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        try:
            sql(ADMIN_DSN, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
            await _expect_unavailable(f)
            async with f.client.get("/-/ready") as resp:
                assert resp.status == 503
                assert (await resp.json())["status"] == "store_unavailable"
            async with f.client.get("/metrics") as resp:
                assert parse_metrics(await resp.text())[series("itsmd_store_up")] == 0
        finally:
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        assert len(inbox_rows(replica_dsn)) == 1

        async def ready() -> bool:
            async with f.client.get("/-/ready") as resp:
                return resp.status == 200

        await eventually(ready)
        assert (await f.post("/webhook/alertmanager", capture(WEBHOOK)))[0] == 200


async def test_concurrent_requests_share_transactions(config_path: Path, tmp_path: Path, replica_dsn: str) -> None:
    n = 40
    async with follower(config_path, tmp_path / "data", replica_dsn, commit_window=0.05) as f:
        bodies = [{"labels": {"alertname": "Burst", "n": str(i)}} for i in range(n)]
        answers = await asyncio.gather(*(f.post("/api/v2/alerts", [b]) for b in bodies))
        assert [a[0] for a in answers] == [200] * n
        rows = inbox_rows(replica_dsn)
        assert sorted(json.loads(r[3])[0]["labels"]["n"] for r in rows) == sorted(str(i) for i in range(n))
        # xmin is the inserting transaction: fewer transactions than requests, and each one was a commit.
        transactions = sql(replica_dsn, "SELECT count(DISTINCT xmin::text) FROM inbox")[0][0]
        async with f.client.get("/metrics") as resp:
            commits = parse_metrics(await resp.text())[series("itsmd_inbox_commits_total")]
        assert transactions == commits
        assert transactions < n


class _LeaseMetrics(Collector):
    """Stands in for the lease's collector (daemon/replica/metrics.py), which the supervisor passes in."""

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("itsmd_leader", "1 while this replica leads.", value=0)


async def test_metrics_are_the_followers_own(config_path: Path, tmp_path: Path, replica_dsn: str) -> None:
    async with follower(config_path, tmp_path / "data", replica_dsn, collectors=(_LeaseMetrics(),)) as f:
        await f.post("/webhook/alertmanager", capture(WEBHOOK))
        await f.post("/webhook/alertmanager", b"[]")
        async with f.client.get("/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        metrics = parse_metrics(text)
        assert metrics[series("itsmd_inbox_accepted_total", kind="alertmanager_webhook")] == 1
        assert metrics[series("itsmd_inbox_accepted_alerts_total", kind="alertmanager_webhook")] == 3
        assert metrics[series("itsmd_inbox_refused_total", reason="invalid_payload")] == 1
        assert metrics[series("itsmd_store_up")] == 1
        assert metrics[series("itsmd_leader")] == 0
        assert series("process_cpu_seconds_total") in metrics
        # The records' metrics are the leader's: a follower has none to tell.
        assert not [name for name, _ in metrics if name.startswith(("itsmd_incidents", "itsmd_alerts_firing"))]
        async with f.client.get("/-/healthy") as resp:
            assert resp.status == 200
        async with f.client.get("/-/ready") as resp:
            assert (resp.status, (await resp.json())["status"]) == (200, "ready")


@pytest.mark.parametrize("path", ["/webhook/alertmanager", "/api/v2/alerts"])
async def test_an_empty_list_is_accepted_and_stores_nothing(
    config_path: Path, tmp_path: Path, replica_dsn: str, path: str
) -> None:
    body = b"[]" if path == "/api/v2/alerts" else json.dumps({**capture(WEBHOOK), "alerts": []}).encode()
    async with follower(config_path, tmp_path / "data", replica_dsn) as f:
        status, answer, _ = await f.post(path, body)
        assert (status, answer) == (200, {"status": "success", "accepted": 0})
        assert inbox_rows(replica_dsn) == []
