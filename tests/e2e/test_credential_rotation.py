"""`itsmd run` rotates ingest tokens on SIGHUP: a new one works after the signal, the old one stops at the
signal that removes it, a broken secret file keeps the tokens in use; the log names tokens, never values.

Only the itsmd process is needed here (the stack's Prometheus and Alertmanager are not started).
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .client import wait_for
from .procs import ManagedProcess
from .stack import HOST, START_TIMEOUT, free_ports, itsmd_process, wait_serving

OLD = "e2e-old-ingest-t0ken-1a2b3c"
NEW = "e2e-new-ingest-t0ken-4d5e6f"
RELOAD_TIMEOUT = 15.0


def tokens(*names: str) -> str:
    listed = "".join(f"      - name: {n}\n        token_file: {n}.token\n" for n in names)
    return f"auth:\n  ingest:\n    tokens:\n{listed}"


def post_alert(url: str, token: str) -> int:
    now = datetime.now(UTC)
    alert = {"labels": {"alertname": "Rotation", "service": "e2e"}, "startsAt": now.isoformat()}
    alert["endsAt"] = (now + timedelta(minutes=5)).isoformat()
    req = urllib.request.Request(  # noqa: S310 (a http://127.0.0.1 URL built here)
        f"{url}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5.0) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code)


def reload_successful(url: str) -> tuple[float | None]:
    """A tuple: wait_for needs a truthy value, and 0.0 is what a failed reload shows."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5.0) as resp:  # noqa: S310
        for line in resp.read().decode().splitlines():
            if line.startswith("itsmd_config_last_reload_successful "):
                return (float(line.split()[1]),)
    return (None,)


@pytest.fixture
def itsmd(tmp_path: Path) -> Iterator[tuple[ManagedProcess, str, Path]]:
    (tmp_path / "old.token").write_text(OLD + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(tokens("old"))
    [port] = free_ports(1)
    proc = itsmd_process(config, port, tmp_path / "data", tmp_path / "itsmd.log")
    url = f"http://{HOST}:{port}"
    proc.start()
    try:
        wait_serving(proc, url, START_TIMEOUT)
        yield proc, url, tmp_path
    finally:
        proc.stop()


def test_sighup_rotates_ingest_tokens(itsmd: tuple[ManagedProcess, str, Path]) -> None:
    proc, url, root = itsmd
    pid = proc.pid
    assert pid is not None
    config = root / "config.yaml"
    assert post_alert(url, OLD) == 200
    assert post_alert(url, NEW) == 401

    (root / "new.token").write_text(NEW + "\n")
    config.write_text(tokens("old", "new"))
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: post_alert(url, NEW), lambda s: s == 200, timeout=RELOAD_TIMEOUT, what="the new token taken")
    assert post_alert(url, OLD) == 200  # both during the overlap

    config.write_text(tokens("new", "broken"))  # broken.token does not exist: the whole reload is refused
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: reload_successful(url), lambda v: v == (0.0,), timeout=RELOAD_TIMEOUT, what="a failed reload")
    assert post_alert(url, OLD) == 200
    assert post_alert(url, NEW) == 200

    config.write_text(tokens("new"))
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: post_alert(url, OLD), lambda s: s == 401, timeout=RELOAD_TIMEOUT, what="the old token removed")
    assert post_alert(url, NEW) == 200
    assert reload_successful(url) == (1.0,)
    proc.check_alive()

    log = (root / "itsmd.log").read_text()
    assert "added new (ingest); removed none" in log
    assert "added none; removed old (ingest)" in log
    assert "broken.token" in log  # the failed reload names the file it could not read
    assert OLD not in log and NEW not in log
