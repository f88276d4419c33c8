"""The servers the same load is driven at: itsmd on SQLite and on PostgreSQL, the bare-aiohttp ceiling, and the
real Alertmanager."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import pg

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
    # Called on the fresh workdir before any process starts (e.g. makes a database), and after every process
    # of the case has stopped, whatever happened (run.py calls it in a finally, Ctrl-C included).
    prepare: Callable[[Path], None] | None = None
    cleanup: Callable[[Path], None] | None = None
    # Replicas: the case measures only once /metrics says itsmd_leader is this (1: the leader path, 0: a follower).
    leader: int | None = None
    # A second process started first, on a port of its own, that must lead before the measured one starts; the
    # load goes to the measured one. (workdir, port) -> argv.
    companion: Callable[[Path, int], list[str]] | None = None
    check_service: Callable[[], str | None] | None = None  # why a service the target needs is not there

    def unavailable(self) -> str | None:
        """Why this target cannot run here, or None."""
        if self.requires is not None and not self.requires.is_file():
            return f"{self.requires} not found"
        if self.check_service is not None:
            return self.check_service()
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


# One replica's config on the case's database. The audit key is one file for all replicas of a case: whoever
# leads continues the same chain. Lease and renew are the defaults (6 s / 2 s): the case never fails over.
_ITSMD_PG_YAML = """\
storage: {{backend: postgres, dsn_file: {dsn}}}
replica: {{name: {name}}}
audit: {{key_file: {audit_key}}}
runbooks: {{digest_key_file: {digest_key}}}
"""


def _pg_replica(workdir: Path, port: int, name: str) -> list[str]:
    config = workdir / f"{name}.yaml"
    config.write_text(
        _ITSMD_PG_YAML.format(
            dsn=workdir / "dsn", name=name, audit_key=workdir / "audit.key", digest_key=workdir / "digest.key"
        ),
        encoding="utf-8",
    )
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir()
    return [
        sys.executable, "-m", "daemon", "run",
        "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
    ]  # fmt: skip


def _itsmd_pg(workdir: Path, port: int) -> list[str]:
    return _pg_replica(workdir, port, "bench-1")


def _itsmd_pg_leader(workdir: Path, port: int) -> list[str]:
    return _pg_replica(workdir, port, "bench-leader")


def _itsmd_pg_follower(workdir: Path, port: int) -> list[str]:
    return _pg_replica(workdir, port, "bench-follower")


def _prepare_pg(workdir: Path) -> None:
    pg.prepare_workdir(workdir)


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
    Target(
        "itsmd-pg",
        "itsmd on storage.backend postgres (fresh database), one replica, measured once it leads",
        _itsmd_pg,
        received_metric="itsmd_alerts_received_total",
        requires=REPO_ROOT / "daemon" / "cli.py",
        prepare=_prepare_pg,
        cleanup=pg.cleanup_workdir,
        leader=1,
        check_service=pg.unavailable,
    ),
    Target(
        "itsmd-pg-follower",
        "two itsmd replicas on one fresh PostgreSQL database; load to the follower (inbox ingest), counted by the "
        "leader after the inbox is applied; srv CPU is both replicas'",
        _itsmd_pg_follower,
        received_metric="itsmd_alerts_received_total",
        requires=REPO_ROOT / "daemon" / "cli.py",
        prepare=_prepare_pg,
        cleanup=pg.cleanup_workdir,
        leader=0,
        companion=_itsmd_pg_leader,
        check_service=pg.unavailable,
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
