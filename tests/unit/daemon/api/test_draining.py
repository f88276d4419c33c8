from __future__ import annotations

from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.ingest.conftest import epoch, running, write_config


async def test_ready_goes_false_when_shutdown_begins(tmp_path: Path) -> None:
    async with running(
        write_config(tmp_path / "etc"), tmp_path / "data", ManualClock(epoch("2026-11-23T18:00:00Z"))
    ) as d:
        app = d.client.app
        assert app is not None
        await app.shutdown()  # what the runner does first on SIGTERM, while requests still drain
        async with d.client.get("/-/ready") as resp:
            assert resp.status == 503
            assert (await resp.json())["status"] == "draining"
        async with d.client.get("/-/healthy") as resp:
            assert resp.status == 200
