"""The servers the same load is driven at: itsmd, the bare-aiohttp ceiling, and the real Alertmanager."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"

# A route to a receiver with no configs: Alertmanager groups and dedups as usual but sends nothing out.
_ALERTMANAGER_YML = """\
route:
  receiver: blackhole
  group_by: [alertname, service]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: blackhole
"""


@dataclass(frozen=True)
class Target:
    """How to start one server on a given port with a fresh working folder of its own."""

    name: str
    describe: str
    command: Callable[[Path, int], list[str]]  # (workdir, port) -> argv; may write config files into workdir
    post_path: str = "/api/v2/alerts"
    ready_path: str = "/-/ready"
    received_metric: str | None = None  # the server's own counter of alerts received, read from /metrics
    requires: Path | None = None  # a file that must exist for the target to run here

    def unavailable(self) -> str | None:
        """Why this target cannot run here, or None."""
        if self.requires is not None and not self.requires.is_file():
            return f"{self.requires} not found"
        return None


def _itsmd(workdir: Path, port: int) -> list[str]:
    config = workdir / "itsmd.yaml"
    config.write_text("{}\n", encoding="utf-8")  # all defaults
    data_dir = workdir / "data"
    data_dir.mkdir()
    return [
        sys.executable, "-m", "daemon", "run",
        "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
    ]  # fmt: skip


def _ceiling(_: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "bench.ceiling", "--port", str(port)]


def _alertmanager(workdir: Path, port: int) -> list[str]:
    config = workdir / "alertmanager.yml"
    config.write_text(_ALERTMANAGER_YML, encoding="utf-8")
    storage = workdir / "storage"
    storage.mkdir()
    return [
        ALERTMANAGER_BIN,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


TARGETS: tuple[Target, ...] = (
    Target(
        "itsmd",
        "itsmd (python -m daemon run), fresh data dir, default config",
        _itsmd,
        received_metric="itsmd_alerts_received_total",
        requires=REPO_ROOT / "daemon" / "cli.py",
    ),
    Target("ceiling", "bare aiohttp: json.loads the body, answer 200 (bench/ceiling.py)", _ceiling),
    Target(
        "alertmanager",
        "Alertmanager 0.25 POST /api/v2/alerts, no-op receiver",
        _alertmanager,
        received_metric="alertmanager_alerts_received_total",
        requires=Path(ALERTMANAGER_BIN),
    ),
)
TARGET_NAMES: tuple[str, ...] = tuple(t.name for t in TARGETS)
