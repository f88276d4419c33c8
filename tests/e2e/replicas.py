"""Three itsmd replicas on one PostgreSQL database, fed by the real Prometheus and Alertmanager.

The stack of stack.py with its one itsmd replaced by three replicas (r0, r1, r2) on free ports: Prometheus
lists all three next to the real Alertmanager under alerting.alertmanagers, Alertmanager has one webhook_configs
entry per replica (README, "Replicas"). The database is created for the module and dropped afterwards.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.rows import dict_row

from tests.postgres import create_database, drop_database

from .client import get_json, request, wait_until
from .procs import ManagedProcess
from .stack import (
    ALERTNAME,
    CLUSTER,
    FLAP,
    FLAP_ALERT,
    FLAP_SERVICE,
    HOST,
    JOB,
    RECUR,
    RECUR_ALERT,
    RECUR_SERVICE,
    SERVICE,
    Binaries,
    Stack,
    _write_yaml,
    free_ports,
    itsmd_process,
)

REPLICAS = 3
LEASE = 3.0
RENEW = 1.0
DSN_ENV = "ITSMD_E2E_PG_DSN"
_LEADER = re.compile(r"^itsmd_leader(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


def leader_gauge(url: str) -> float | None:
    """itsmd_leader on this replica's /metrics, or None when it does not answer."""
    try:
        resp = request("GET", f"{url}/metrics", timeout=2.0)
    except OSError:
        return None
    if resp.status != 200:
        return None
    found = _LEADER.search(resp.text())
    return float(found.group(1)) if found else None


class ReplicaStack(Stack):
    def __init__(self, root: Path, binaries: Binaries) -> None:
        super().__init__(root, binaries)
        self.db_name, self.dsn = create_database()
        self.ports = free_ports(REPLICAS)
        self.urls = [f"http://{HOST}:{p}" for p in self.ports]
        self.configs = [self.itsmd_dir / f"r{i}.yaml" for i in range(REPLICAS)]
        env = {DSN_ENV: self.dsn}
        self.replicas: list[ManagedProcess] = []
        for i, port in enumerate(self.ports):
            proc = itsmd_process(self.configs[i], port, self.data / f"r{i}", self.logs / f"r{i}.log")
            proc.name = f"itsmd-r{i}"
            proc.env = {**(proc.env or {}), **env}
            self.replicas.append(proc)
        # The base class's single itsmd: its URL is replica 0's so that helpers reading itsmd_url work.
        self.itsmd = self.replicas[0]
        self.itsmd_url = self.urls[0]

    def write_configs(self) -> None:
        super().write_configs()
        prometheus = yaml.safe_load((self.etc / "prometheus.yml").read_text())
        prometheus["alerting"]["alertmanagers"] = [
            {"api_version": "v2", "static_configs": [{"targets": [f"{HOST}:{self.am_port}"]}]},
            {
                "api_version": "v2",
                "timeout": "5s",
                "static_configs": [{"targets": [f"{HOST}:{p}" for p in self.ports]}],
            },
        ]
        _write_yaml(self.etc / "prometheus.yml", prometheus)
        alertmanager = yaml.safe_load((self.etc / "alertmanager.yml").read_text())
        alertmanager["receivers"][0]["webhook_configs"] = [
            {"url": f"{url}/webhook/alertmanager", "send_resolved": True} for url in self.urls
        ]
        _write_yaml(self.etc / "alertmanager.yml", alertmanager)
        for i, (port, url) in enumerate(zip(self.ports, self.urls, strict=True)):
            config: dict[str, Any] = {
                "listen": f"{HOST}:{port}",
                "data_dir": str(self.data / f"r{i}"),
                "rules_dir": "rules",
                "alerts": {"webhook_stale_after": "4h15m", "resolve_timeout": "5m"},
                "storage": {"backend": "postgres", "dsn_env": DSN_ENV},
                # One key of each kind for all replicas, as a secret every replica mounts.
                "audit": {"key_file": str(self.itsmd_dir / "keys" / "audit.key")},
                "runbooks": {"digest_key_file": str(self.itsmd_dir / "keys" / "digest.key")},
                "replica": {"name": f"r{i}", "advertise_url": url, "lease": f"{LEASE:g}s", "renew": f"{RENEW:g}s"},
            }
            for section, settings in self.extra_config(i).items():
                current = config.get(section)
                config[section] = {**current, **settings} if isinstance(current, dict) else settings
            _write_yaml(self.configs[i], config)

    def extra_config(self, i: int) -> dict[str, Any]:
        """Settings a subclass adds to replica i's config: each section is merged one level deep into the
        section written here (so `runbooks: {dir: runbooks}` keeps the shared digest key)."""
        return {}

    def processes(self) -> Iterator[ManagedProcess]:
        yield from (self.prometheus, self.alertmanager, *self.replicas, self.target)

    def stop(self) -> None:
        try:
            for proc in self.replicas:
                if proc.pid is not None:
                    os.kill(proc.pid, signal.SIGCONT)  # a frozen replica cannot take SIGTERM
            super().stop()
        finally:
            drop_database(self.db_name)

    def launch_itsmd(self) -> None:
        for proc in self.replicas:
            proc.start()

    def wait_itsmd(self) -> None:
        for proc, url in zip(self.replicas, self.urls, strict=True):
            self._wait_http(proc, f"{url}/-/healthy", 30.0)
        self.wait_leader()

    def start_replica(self, i: int) -> None:
        self.replicas[i].start()
        self._wait_http(self.replicas[i], f"{self.urls[i]}/-/healthy", 30.0)

    def leaders(self) -> list[int]:
        return [i for i, url in enumerate(self.urls) if leader_gauge(url) == 1.0]

    def wait_leader(self, *, other_than: int | None = None, timeout: float = 30.0) -> int:
        """The index of the one replica saying itsmd_leader 1 (and /-/ready), once exactly one does."""

        def one() -> int | None:
            found = [i for i in self.leaders() if i != other_than]
            if len(found) != 1:
                return None
            if request("GET", f"{self.urls[found[0]]}/-/ready", timeout=2.0).status != 200:
                return None
            return found[0] + 1  # truthy for index 0

        return wait_until(one, timeout=timeout, what="exactly one leader", describe=self.describe) - 1

    def describe(self) -> str:
        return "\n".join(proc.tail(20) for proc in self.replicas)

    def wait_prometheus_wired(self) -> None:
        def wired() -> bool:
            self.prometheus.check_alive()
            ams = get_json(f"{self.prom_url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            targets = get_json(f"{self.prom_url}/api/v1/targets?state=active")["data"]["activeTargets"]
            up = {t["labels"].get("job") for t in targets if t["health"] == "up"}
            return len(ams) == 1 + REPLICAS and {JOB, FLAP, RECUR} <= up

        wait_until(wired, timeout=40.0, what="Prometheus wired to Alertmanager and the replicas")

    def freeze(self, i: int) -> None:
        pid = self.replicas[i].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)

    def thaw(self, i: int) -> None:
        pid = self.replicas[i].pid
        assert pid is not None
        os.kill(pid, signal.SIGCONT)


def lease_row(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        row = conn.execute("SELECT epoch, holder, url FROM leader_lease WHERE id = 1").fetchone()
    assert row is not None
    return dict(row)


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """A read on the replicas' database, beside them (what they stored, not what they say)."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return [dict(r) for r in conn.execute(sql.encode(), params).fetchall()]


__all__ = [
    "ALERTNAME",
    "CLUSTER",
    "FLAP_ALERT",
    "FLAP_SERVICE",
    "LEASE",
    "RECUR_ALERT",
    "RECUR_SERVICE",
    "RENEW",
    "SERVICE",
    "ReplicaStack",
    "leader_gauge",
    "lease_row",
    "query",
]
