"""What housekeeping removed and when it last ran, on /metrics of the running daemon."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.app import HOUSEKEEPING
from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import running, series, write_config

DAY = 86400.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def test_deleted_alerts_and_the_last_run_are_reported(tmp_path: Path) -> None:
    clock = ManualClock(start=1_900_000_000.0)
    config = write_config(tmp_path / "etc", "retention:\n  alerts: 1d\n")
    async with running(config, tmp_path / "data", clock) as d:
        metrics = await d.metrics()
        assert metrics[series("itsmd_housekeeping_deleted_total", record="alerts")] == 0
        assert metrics[series("itsmd_housekeeping_last_run_timestamp_seconds")] == 0
        now = clock.now()
        body = [
            {"labels": {"alertname": "Gone", "instance": str(i)}, "startsAt": _iso(now - 60), "endsAt": _iso(now)}
            for i in range(5)
        ]
        status, answer = await d.v2(body)
        assert status == 200, answer
        clock.advance(2 * DAY)
        await d.client.app[HOUSEKEEPING].run()
        metrics = await d.metrics()
        assert metrics[series("itsmd_housekeeping_deleted_total", record="alerts")] == 5
        assert metrics[series("itsmd_housekeeping_last_run_timestamp_seconds")] == clock.now()
        assert metrics[series("itsmd_database_size_bytes")] > 0
        assert await d.alerts() == []
