"""The daemon on storage.backend postgres: what it acknowledges is in the database, and a restart on the
same database brings it back (alerts, incidents, counters, the audit chain)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running, series, write_config


async def _received(d: Daemon) -> float:
    return (await d.metrics())[series("itsmd_alerts_received_total", source="alertmanager")]


async def test_alerts_and_incidents_are_kept_in_postgres_across_a_restart(tmp_path: Path, postgres_dsn: str) -> None:
    (tmp_path / "dsn").write_text(postgres_dsn, encoding="utf-8")
    # Keys named, as a config on PostgreSQL must (replicas share them).
    config = write_config(
        tmp_path,
        "storage:\n  backend: postgres\n  dsn_file: dsn\naudit:\n  key_file: keys/audit.key\n"
        "runbooks:\n  digest_key_file: keys/digest.key\n",
    )
    clock = ManualClock(start=epoch("2026-11-23T18:15:50Z"))
    async with running(config, tmp_path / "data", clock) as d:
        status, _ = await d.post_capture("am_webhook_firing_grouped_checkout_3_alerts.json")
        assert status == 200
        [incident] = await d.incidents()
        fingerprints = {a["fingerprint"] for a in await d.alerts()}
        assert len(fingerprints) == 3
        received = await _received(d)
        assert received == 3
    with psycopg.connect(postgres_dsn) as conn:
        stored = {str(fp) for (fp,) in conn.execute("SELECT fingerprint FROM alerts")}
        kinds = [str(k) for (k,) in conn.execute("SELECT kind FROM timeline WHERE incident_id = %s", (incident["id"],))]
        actions = [str(a) for (a,) in conn.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert stored == fingerprints
    assert "opened" in kinds
    assert actions[:2] == ["chain_started", "opened"]

    async with running(config, tmp_path / "data", clock) as again:
        assert [i["id"] for i in await again.incidents()] == [incident["id"]]
        assert {a["fingerprint"] for a in await again.alerts()} == fingerprints
        assert await _received(again) == received
        events = await again.get_json("/api/v1/audit?limit=1")
        assert events["events"][0]["action"] == "chain_started"
