"""The end-to-end stack: a flappable scrape target, the real Alertmanager and Prometheus, and itsmd.

Everything binds 127.0.0.1 on ports the kernel hands out, and lives under one temporary folder::

    etc/          prometheus.yml  rules.yml  alertmanager.yml
    itsmd/        config.yaml  rules/services.yaml  rules/correlation.yaml
    data/         prometheus/  alertmanager/  itsmd/
    log/          target.log  alertmanager.log  prometheus.log  itsmd.log (appended to on every restart)

Prometheus sends its alerts to both the real Alertmanager and to itsmd's ``POST /api/v2/alerts``;
Alertmanager notifies itsmd on ``POST /webhook/alertmanager``. So every alert reaches itsmd twice.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.postgres import ON_POSTGRES, on_test_backend_document, storage_section

from .client import get_json, post_json, request, wait_until
from .procs import ManagedProcess

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_SCRIPT = Path(__file__).resolve().with_name("flappy_target.py")

JOB = "flappy"
SERVICE = "flappy-api"
ALERTNAME = "TargetDown"
CLUSTER = "itsmd-e2e"  # Prometheus external label: part of every alert's labels and fingerprint
REOPEN_WINDOW = "1h"
# Two more targets of the same target process, each with its own alert, service and correlation rule:
# one to flap (flapping: 4 changes within 2 minutes), one for repeated outages (3 within an hour make a
# candidate problem; no reopen, no flapping so every outage is an incident of its own).
FLAP = "flap"
FLAP_SERVICE = "flap-api"
FLAP_ALERT = "FlapTargetDown"
RECUR = "recur"
RECUR_SERVICE = "recur-api"
RECUR_ALERT = "RecurTargetDown"
RECURRENCE_COUNT = 3

# Deadlines (seconds). Prometheus discovers targets and Alertmanagers ~5 s after it is ready and
# scrapes ~8 s after start (realstack NOTES); the rest is start-up on a slow CI machine.
START_TIMEOUT = 30.0
FIRST_SCRAPE_TIMEOUT = 40.0


class MissingBinary(Exception):
    """A binary the end-to-end tests need is not installed."""


@dataclass(frozen=True)
class Binaries:
    prometheus: str
    promtool: str
    alertmanager: str
    amtool: str

    @classmethod
    def find(cls) -> Binaries:
        """Find the binaries on PATH, or where $PROMETHEUS_BIN, $PROMTOOL_BIN, ... point."""
        found: dict[str, str] = {}
        missing: list[str] = []
        for field, binary in (
            ("prometheus", "prometheus"),
            ("promtool", "promtool"),
            ("alertmanager", "prometheus-alertmanager"),
            ("amtool", "amtool"),
        ):
            env = f"{field.upper()}_BIN"
            override = os.environ.get(env)
            path = override or shutil.which(binary)
            if path is None:
                missing.append(f"{binary} (not on PATH, and ${env} is not set)")
            elif not os.access(path, os.X_OK):
                missing.append(f"{binary} (${env}={override} is not an executable file)")
            else:
                found[field] = path
        if missing:
            raise MissingBinary(
                "the e2e tests run the real Prometheus and Alertmanager, but these are missing: "
                + "; ".join(missing)
                + ". Install them with `apt-get install --no-install-recommends prometheus "
                "prometheus-alertmanager` (Debian bookworm: Prometheus 2.42, Alertmanager 0.25)."
            )
        return cls(**found)


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for 127.0.0.1:0; all distinct, as every socket stays open until the end."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ItsmdProcess(ManagedProcess):
    """itsmd as a child process. With ITSMD_TEST_BACKEND=postgres each start first gives the config a storage
    section naming a database of the test's own (when it names no backend itself): at start, not when built,
    because a Stack builds its processes before it writes their configs."""

    def __init__(self, config: Path, port: int, data_dir: Path, log_path: Path) -> None:
        self.config, self.data_dir = config, data_dir
        # Taken now, so the DSN's environment variable is in the environment the child is given.
        storage_section(data_dir)
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "daemon", "run", "--config", str(config), "--listen", f"{HOST}:{port}"]
        super().__init__(
            "itsmd",
            [*argv, "--data-dir", str(data_dir)],
            log_path,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"},
        )

    def start(self) -> None:
        document = yaml.safe_load(self.config.read_text()) or {}
        moved = on_test_backend_document(document, self.data_dir)
        if moved is not document:
            _write_yaml(self.config, moved)
        super().start()


_LEADER = re.compile(r"^itsmd_leader(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


def serving(base: str) -> bool:
    """itsmd at `base` answers /-/ready and, on PostgreSQL, leads: a single node there is a replica too, and
    after kill -9 it follows (ready, but 503 no_leader on the API) until the lease its last process held
    runs out and it takes the lease again."""
    try:
        if request("GET", f"{base}/-/ready", timeout=2.0).status != 200:
            return False
        if not ON_POSTGRES:
            return True
        found = _LEADER.search(request("GET", f"{base}/metrics", timeout=2.0).text())
    except OSError:
        return False
    return found is not None and float(found.group(1)) == 1.0


def wait_serving(process: ManagedProcess, base: str, timeout: float = 30.0) -> None:
    def up() -> bool:
        process.check_alive()
        return serving(base)

    wait_until(up, timeout=timeout, what=f"{process.name} at {base} to be ready and lead", describe=process.tail)


def itsmd_process(config: Path, port: int, data_dir: Path, log_path: Path) -> ManagedProcess:
    """itsmd as a child process, importable from this checkout whatever the working directory, on the
    backend under test (ItsmdProcess)."""
    return ItsmdProcess(config, port, data_dir, log_path)


def _write_yaml(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


class Stack:
    """Builds the configs, starts the four processes in dependency order and stops them all."""

    def __init__(self, root: Path, binaries: Binaries) -> None:
        self.root = root
        self.binaries = binaries
        self.etc = root / "etc"
        self.data = root / "data"
        self.logs = root / "log"
        self.itsmd_dir = root / "itsmd"
        for name in ("prometheus", "alertmanager", "itsmd"):
            (self.data / name).mkdir(parents=True, exist_ok=True)
        for folder in (self.etc, self.logs, self.itsmd_dir):
            folder.mkdir(parents=True, exist_ok=True)

        self.target_port, self.am_port, self.prom_port, self.itsmd_port = free_ports(4)
        self.target_url = f"http://{HOST}:{self.target_port}"
        self.am_url = f"http://{HOST}:{self.am_port}"
        self.prom_url = f"http://{HOST}:{self.prom_port}"
        self.itsmd_url = f"http://{HOST}:{self.itsmd_port}"
        self.itsmd_config = self.itsmd_dir / "config.yaml"
        self.itsmd_data = self.data / "itsmd"

        self.target = ManagedProcess(
            "target",
            [sys.executable, str(TARGET_SCRIPT), HOST, str(self.target_port)],
            self.logs / "target.log",
        )
        self.alertmanager = ManagedProcess(
            "alertmanager",
            [
                binaries.alertmanager,
                f"--config.file={self.etc / 'alertmanager.yml'}",
                f"--storage.path={self.data / 'alertmanager'}",
                f"--web.listen-address={HOST}:{self.am_port}",
                f"--web.external-url={self.am_url}/",
                "--cluster.listen-address=",  # no gossip listener (it would bind 0.0.0.0:9094)
                "--log.level=debug",  # "Notify success" / "Notify for alerts failed" lines
            ],
            self.logs / "alertmanager.log",
        )
        self.prometheus = ManagedProcess(
            "prometheus",
            [
                binaries.prometheus,
                f"--config.file={self.etc / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data / 'prometheus'}",
                f"--web.listen-address={HOST}:{self.prom_port}",
                f"--web.external-url={self.prom_url}/",
            ],
            self.logs / "prometheus.log",
        )
        self.itsmd = itsmd_process(self.itsmd_config, self.itsmd_port, self.itsmd_data, self.logs / "itsmd.log")

    # ----------------------------------------------------------------- configs

    def write_configs(self) -> None:
        _write_yaml(
            self.etc / "rules.yml",
            {
                "groups": [
                    {
                        "name": "itsmd-e2e",
                        "interval": "1s",
                        "rules": [
                            {
                                "alert": alert,
                                "expr": f'up{{job="{job}"}} == 0',
                                "for": "0s",
                                "labels": {"severity": "critical"},
                                "annotations": {"summary": "Target {{ $labels.instance }} is down"},
                            }
                            for alert, job in ((ALERTNAME, JOB), (FLAP_ALERT, FLAP), (RECUR_ALERT, RECUR))
                        ],
                    }
                ]
            },
        )
        _write_yaml(
            self.etc / "prometheus.yml",
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",  # must not exceed scrape_interval
                    "evaluation_interval": "1s",
                    "external_labels": {"cluster": CLUSTER},
                },
                "rule_files": [str(self.etc / "rules.yml")],
                "alerting": {
                    "alertmanagers": [
                        # the real Alertmanager
                        {"api_version": "v2", "static_configs": [{"targets": [f"{HOST}:{self.am_port}"]}]},
                        # itsmd itself: it implements POST /api/v2/alerts
                        {
                            "api_version": "v2",
                            "timeout": "5s",
                            "static_configs": [{"targets": [f"{HOST}:{self.itsmd_port}"]}],
                        },
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "static_configs": [{"targets": [f"{HOST}:{self.target_port}"], "labels": {"service": SERVICE}}],
                    },
                    *(
                        {
                            "job_name": job,
                            "metrics_path": f"/metrics/{job}",
                            "static_configs": [{"targets": [f"{HOST}:{self.target_port}"], "labels": {"service": svc}}],
                        }
                        for job, svc in ((FLAP, FLAP_SERVICE), (RECUR, RECUR_SERVICE))
                    ),
                ],
            },
        )
        _write_yaml(
            self.etc / "alertmanager.yml",
            {
                "route": {
                    "receiver": "itsmd",
                    "group_by": ["alertname", "service"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "10s",
                },
                "receivers": [
                    {
                        "name": "itsmd",
                        "webhook_configs": [{"url": f"{self.itsmd_url}/webhook/alertmanager", "send_resolved": True}],
                    }
                ],
            },
        )
        _write_yaml(
            self.itsmd_config,
            {
                "listen": f"{HOST}:{self.itsmd_port}",
                "data_dir": str(self.itsmd_data),
                "rules_dir": "rules",
                "alerts": {"webhook_stale_after": "4h15m", "resolve_timeout": "5m"},
            },
        )
        self.write_rules()

    def write_rules(self, services: object = None) -> None:
        """itsmd's rules/ (services.yaml may be replaced, to test reloads)."""
        _write_yaml(
            self.itsmd_dir / "rules" / "services.yaml",
            services
            or {"services": [{"name": name, "tier": "high"} for name in (SERVICE, FLAP_SERVICE, RECUR_SERVICE)]},
        )
        _write_yaml(
            self.itsmd_dir / "rules" / "correlation.yaml",
            {
                "group_by": ["alertname", "service"],
                "reopen_window": REOPEN_WINDOW,
                "rules": [
                    {
                        "name": "flap",
                        "matchers": [f'service="{FLAP_SERVICE}"'],
                        "flapping": {"window": "2m", "enter": 4, "leave": 1},
                    },
                    {
                        "name": "recur",
                        "matchers": [f'service="{RECUR_SERVICE}"'],
                        "reopen_window": "0s",
                        "flapping": {"enabled": False},
                        "recurrence": {"count": RECURRENCE_COUNT, "window": "1h"},
                    },
                ],
            },
        )

    def check_configs(self) -> None:
        """promtool and amtool must accept the configs before anything starts."""
        for argv in (
            [self.binaries.promtool, "check", "config", str(self.etc / "prometheus.yml")],
            [self.binaries.amtool, "check-config", str(self.etc / "alertmanager.yml")],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the target, then itsmd, Alertmanager and Prometheus together, and wait until each is ready
        and Prometheus is wired. Together: Prometheus' discovery takes ~5 s to hand it its targets and
        receivers whatever else runs, and nothing fires while the target is up, so nobody sends to a
        receiver still starting; one after the other cost each module's setup the other starts too."""
        self.write_configs()
        self.check_configs()
        self.target.start()
        self._wait_http(self.target, f"{self.target_url}/_control", START_TIMEOUT)
        self.launch_itsmd()
        self.alertmanager.start()
        self.prometheus.start()
        self.wait_itsmd()
        self._wait_http(self.alertmanager, f"{self.am_url}/-/ready", START_TIMEOUT)
        self._wait_http(self.prometheus, f"{self.prom_url}/-/ready", START_TIMEOUT)
        self.wait_prometheus_wired()

    def processes(self) -> Iterator[ManagedProcess]:
        yield from (self.prometheus, self.alertmanager, self.itsmd, self.target)

    def stop(self) -> None:
        """Stop everything (Prometheus first, so nobody pushes to a stopped receiver)."""
        errors: list[BaseException] = []
        for process in self.processes():
            try:
                process.stop()
            except BaseException as exc:  # stop the others anyway, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def log_tails(self) -> list[tuple[str, str]]:
        return [(process.name, process.tail()) for process in self.processes()]

    def _wait_http(self, process: ManagedProcess, url: str, timeout: float) -> None:
        def ready() -> bool:
            process.check_alive()
            return request("GET", url, timeout=2.0).status == 200

        wait_until(ready, timeout=timeout, what=f"{process.name} to answer 200 on {url}", describe=process.tail)

    def wait_prometheus_wired(self) -> None:
        """Prometheus knows both alert receivers and has scraped the target (about 8 s after start)."""

        def wired() -> bool:
            self.prometheus.check_alive()
            ams = get_json(f"{self.prom_url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            if len(ams) != 2:
                return False
            targets = get_json(f"{self.prom_url}/api/v1/targets?state=active")["data"]["activeTargets"]
            up = {t["labels"].get("job") for t in targets if t["health"] == "up"}
            return {JOB, FLAP, RECUR} <= up

        def describe() -> str:
            targets = get_json(f"{self.prom_url}/api/v1/targets")["data"]
            ams = get_json(f"{self.prom_url}/api/v1/alertmanagers")["data"]
            return f"targets: {targets}\nalertmanagers: {ams}\n{self.prometheus.tail()}"

        wait_until(
            wired,
            timeout=FIRST_SCRAPE_TIMEOUT,
            what="Prometheus to discover both Alertmanagers and scrape the flappy target",
            describe=describe,
        )

    # ----------------------------------------------------------------- itsmd

    def start_itsmd(self) -> None:
        """Start itsmd (same port, config and data dir every time) and wait until it serves (`serving`)."""
        self.launch_itsmd()
        self.wait_itsmd()

    def launch_itsmd(self) -> None:
        """Start itsmd's process(es) without waiting (a stack of replicas starts all of its own)."""
        self.itsmd.start()

    def wait_itsmd(self) -> None:
        wait_serving(self.itsmd, self.itsmd_url, START_TIMEOUT)

    def kill_itsmd(self) -> None:
        """SIGKILL itsmd: no shutdown code runs, only what was committed survives."""
        self.itsmd.kill()

    def restart_itsmd(self) -> None:
        self.kill_itsmd()
        self.start_itsmd()

    # ---------------------------------------------------------------- target

    def set_target_down(self, down: bool, name: str = "") -> None:
        state = post_json(f"{self.target_url}/_control", {"down": down, "name": name})
        assert state["down"] is down, state

    def am_alerts(self) -> list[dict[str, Any]]:
        """What the real Alertmanager holds right now (GET /api/v2/alerts)."""
        alerts: list[dict[str, Any]] = get_json(f"{self.am_url}/api/v2/alerts")
        return alerts


S = TypeVar("S", bound=Stack)


def module_stack(kind: type[S], root: Path) -> Iterator[S]:
    """A stack of its own for one test module (use with `yield from` in a module-scoped fixture): started,
    its logs printed if anything fails, stopped whatever happened. A missing binary fails, never skips."""
    try:
        binaries = Binaries.find()
    except MissingBinary as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    stack = kind(root, binaries)
    try:
        stack.start()
        yield stack
    except BaseException:
        for name, tail in stack.log_tails():
            print(f"--- {name}\n{tail}")
        raise
    finally:
        stack.stop()
