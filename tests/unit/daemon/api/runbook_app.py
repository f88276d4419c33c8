"""The real app with runbooks: config and runbook files in tmp_path, runs followed over the API."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from daemon.runbook.model import TERMINAL as RUN_TERMINAL
from tests.unit.daemon.configfiles import write_rules
from tests.unit.daemon.ingest.conftest import Daemon, eventually

TERMINAL = {status.value for status in RUN_TERMINAL}
Json = Any


def write_setup(folder: Path, runbooks: dict[str, str], extra: str = "") -> Path:
    """itsmd.yaml and runbooks/<name>.yaml under folder; returns the config path."""
    (folder / "runbooks").mkdir(parents=True, exist_ok=True)
    for name, text in runbooks.items():
        (folder / "runbooks" / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    write_rules(folder / "rules")
    config = folder / "itsmd.yaml"
    config.write_text(
        "shutdown_timeout: 2s\nrules_dir: rules\nrunbooks:\n  dir: runbooks\n  change_suspect_window: 10m\n"
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return config


async def call(d: Daemon, method: str, path: str, body: Json = None, **kwargs: Any) -> tuple[int, Json]:
    async with d.client.request(method, path, json=body, **kwargs) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def until(d: Daemon, run_id: int, *statuses: str, within: float = 20.0) -> Json:
    """The run once its status is one of `statuses` (default: any terminal one)."""
    wanted = set(statuses) or TERMINAL
    seen: dict[str, Json] = {}

    async def reached() -> bool:
        seen["run"] = await d.get_json(f"/api/v1/runs/{run_id}")
        return bool(seen["run"]["status"] in wanted)

    await eventually(reached, within)
    return seen["run"]
