"""SIGKILL itsmd while a runbook step is executing; after a restart no run is left `running`: a run whose step
is idempotent resumes (and finishes), one whose step is not is held for a human, by the runbooks' policy.

The steps block on a FIFO the test holds, so "mid-step" is a fact (the step wrote its marker and waits), not a
guess about timing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.runbook.model import TERMINAL as RUN_TERMINAL

from .client import get_json, request, wait_for, wait_until
from .procs import ManagedProcess
from .stack import free_ports, itsmd_process, wait_serving

pytestmark = pytest.mark.e2e
TERMINAL = {status.value for status in RUN_TERMINAL}


def blocking_step(mark: Path, fifo: Path) -> str:
    """First time: write 'started' and block reading the FIFO. Again (a resume): note it and succeed at once."""
    script = (
        'if [ -e "$MARK" ]; then echo resumed >> "$MARK"; exit 0; fi; echo started > "$MARK"; cat "$FIFO" > /dev/null'
    )
    return f"""
    exec:
      argv: [sh, -c, '{script}']
      env: {{MARK: "{mark}", FIFO: "{fifo}"}}"""


def runbooks(tmp: Path) -> dict[str, str]:
    fifo = tmp / "gate.fifo"
    return {
        "resumable": f"""
name: resumable
on_interrupt: resume
steps:
  - name: wait-gate
    idempotent: true
    timeout: 5m{blocking_step(tmp / "resumable.mark", fifo)}
  - name: after
    exec: {{argv: [sh, -c, 'echo after >> "{tmp / "resumable.mark"}"']}}
""",
        "fragile": f"""
name: fragile
on_interrupt: hold
steps:
  - name: wait-gate
    timeout: 5m{blocking_step(tmp / "fragile.mark", fifo)}
""",
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    os.mkfifo(tmp_path / "gate.fifo")
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name, text in runbooks(tmp_path).items():
        (folder / f"{name}.yaml").write_text(text)
    (port,) = free_ports(1)
    config = tmp_path / "itsmd.yaml"
    config.write_text("runbooks:\n  dir: runbooks\n")
    proc = itsmd_process(config, port, tmp_path / "data", tmp_path / "itsmd.log")
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        # Release the orphaned step processes of the killed daemon: opening the FIFO for writing and closing it
        # gives their `cat` end-of-file.
        with contextlib.suppress(OSError):
            fd = os.open(tmp_path / "gate.fifo", os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)


def start(proc: ManagedProcess, base: str) -> None:
    proc.start()
    wait_serving(proc, base)


def post_run(base: str, runbook: str) -> int:
    resp = request("POST", f"{base}/api/v1/runs", {"runbook": runbook})
    assert resp.status == 201, resp.text()
    run_id: int = resp.json()["id"]
    return run_id


def run_of(base: str, run_id: int) -> Any:
    return get_json(f"{base}/api/v1/runs/{run_id}")


def test_sigkill_mid_step_resumes_idempotent_runs_and_holds_the_others(
    daemon: tuple[ManagedProcess, str], tmp_path: Path
) -> None:
    proc, base = daemon
    start(proc, base)
    resumable = post_run(base, "resumable")
    fragile = post_run(base, "fragile")
    for name in ("resumable", "fragile"):
        mark = tmp_path / f"{name}.mark"
        wait_until(mark.exists, timeout=20, what=f"{name} mid-step")
    for run_id in (resumable, fragile):
        assert run_of(base, run_id)["status"] == "running"

    proc.kill()
    start(proc, base)

    resumed = wait_for(
        lambda: run_of(base, resumable), lambda r: r["status"] in TERMINAL, timeout=20, what="the resumed run"
    )
    held = run_of(base, fragile)
    assert resumed["status"] == "succeeded", resumed
    assert (tmp_path / "resumable.mark").read_text() == "started\nresumed\nafter\n"
    assert [(s["name"], s["status"]) for s in resumed["steps"]] == [
        ("wait-gate", "interrupted"),
        ("wait-gate", "succeeded"),
        ("after", "succeeded"),
    ]
    assert held["status"] == "held", held
    assert "not idempotent" in held["reason"]
    assert [(s["name"], s["status"]) for s in held["steps"]] == [("wait-gate", "interrupted")]
    assert (tmp_path / "fragile.mark").read_text() == "started\n"

    # A human looks, then ends it; its change closes with that outcome.
    resp = request("POST", f"{base}/api/v1/runs/{fragile}/cancel", {"by": "ann", "reason": "checked by hand"})
    assert resp.status == 200, resp.text()
    change = get_json(f"{base}/api/v1/changes/{held['change_id']}")
    assert (change["run_status"], change["outcome"]) == ("cancelled", "cancelled")
    statuses = [e["detail"]["to"] for e in change["events"] if e["kind"] == "status"]
    assert statuses[-2:] == ["held", "cancelled"]
    assert json.dumps(get_json(f"{base}/api/v1/runs?status=running")["runs"]) == "[]"
