"""Runbooks and SLA clocks across a kill -9 of the leader of three replicas on one PostgreSQL (issue 14), with
the real Prometheus and Alertmanager sending to all three and alerts posted to them all the while.

- A non-idempotent step (`on_interrupt: hold`) in flight when the leader dies: the new leader holds the run for
  a human, and the endpoint the step called got exactly one call, across two failovers.
- An idempotent step (`on_interrupt: resume`): the new leader calls the endpoint once more and the run succeeds;
  two calls in all, the first from the dead leader's process, the second from the new leader's.
- An incident's respond target falls due around the kill: exactly one `sla_breached` entry for it in the store,
  and `itsmd_incident_sla_breaches_total` on the new leader counts it once.

The steps call a real aiohttp server (the gate) in this test, which records every call with the run id and
idempotency key the step sends and the process that sent it, and holds the first call of a `block/` path open
until the test releases it, so "mid-step" is a fact the test awaits, not a guess about timing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.runbook.model import TERMINAL as RUN_TERMINAL

from .client import get_json, request, wait_for, wait_until
from .replicas import ReplicaStack, query
from .stack import FLAP_SERVICE, HOST, RECUR_SERVICE, SERVICE, Binaries, module_stack

pytestmark = [pytest.mark.e2e, pytest.mark.replicas]
TERMINAL = {status.value for status in RUN_TERMINAL}
TAKEOVER = 30.0
# Two services whose P1 respond targets fall due 2 s apart: the first is breached (and committed) by the
# leader that is then killed, the second falls due while no replica leads (takeover takes lease + renew).
SLA_FIRST, SLA_SECOND = "sla-first", "sla-second"
RESPOND_FIRST, RESPOND_SECOND = 8.0, 10.0
BREACHES = "itsmd_incident_sla_breaches_total"


@dataclass(frozen=True)
class Call:
    path: str
    run: str | None
    key: str | None
    pid: int | None
    """The process whose socket made the request (found through /proc), None if it could not be told."""


class Gate:
    """The runbooks' HTTP endpoint, served from a thread of its own so that the test's blocking helpers can run."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids
        self._calls: list[Call] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gate", daemon=True)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{mode:block|pass}/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _handle(self, req: web.Request) -> web.Response:
        body = await req.json()
        peer = req.transport.get_extra_info("peername") if req.transport is not None else None
        pid = _socket_owner(int(peer[1]), self.port, self._pids()) if peer else None
        call = Call(req.path, body.get("run"), req.headers.get("Idempotency-Key"), pid)
        with self._changed:
            first = not self.calls(req.path)
            self._calls.append(call)
            self._changed.notify_all()
        if req.match_info["mode"] == "block" and first:
            await self._release.wait()
        return web.json_response({"ok": True, "path": req.path})

    def calls(self, path: str) -> list[Call]:
        return [c for c in self._calls if c.path == path]

    def wait_calls(self, path: str, count: int, timeout: float) -> list[Call]:
        """Block until `path` has had `count` calls (woken by the server thread, no polling)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.calls(path)) >= count, timeout=timeout):
                raise AssertionError(f"{path}: {len(self.calls(path))} calls after {timeout:g}s, expected {count}")
            return self.calls(path)

    def stop(self) -> None:
        async def close() -> None:
            self._release.set()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def _socket_owner(peer_port: int, server_port: int, pids: Iterable[int]) -> int | None:
    """The pid holding the client end (127.0.0.1:peer_port -> :server_port) of a connection, from /proc."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.rsplit(":", 1)[1], 16) == peer_port and int(remote.rsplit(":", 1)[1], 16) == server_port:
                inode = fields[9]
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                    return pid
            except OSError:
                continue
    return None


def _runbooks(gate: str) -> dict[str, str]:
    def call(path: str) -> str:
        return f"""
    timeout: 5m
    http:
      method: POST
      url: "{gate}/{path}"
      headers: {{Idempotency-Key: "run-{{{{ run.id }}}}-{path.replace("/", "-")}"}}
      json: {{run: "{{{{ run.id }}}}"}}"""

    return {
        "fragile-call": f"""
name: fragile-call
on_interrupt: hold
steps:
  - name: call
    idempotent: false{call("block/fragile")}
""",
        "resumable-call": f"""
name: resumable-call
on_interrupt: resume
steps:
  - name: call
    idempotent: true{call("block/resumable")}
  - name: after{call("pass/resumable-after")}
""",
    }


class RunbookReplicas(ReplicaStack):
    """The replica stack with the gate, the two runbooks above and two services with respond targets of seconds."""

    def __init__(self, root: Path, binaries: Binaries) -> None:
        self.gate = Gate(lambda: [p.pid for p in self.replicas if p.pid is not None])
        self.gate.start()
        self.load: Ingest | None = None
        super().__init__(root, binaries)

    def extra_config(self, i: int) -> dict[str, Any]:
        return {"runbooks": {"dir": "runbooks"}}

    def write_configs(self) -> None:
        super().write_configs()
        folder = self.itsmd_dir / "runbooks"
        folder.mkdir(exist_ok=True)
        for name, text in _runbooks(self.gate.url).items():
            (folder / f"{name}.yaml").write_text(text)

    def write_rules(self, services: object = None) -> None:
        catalogue: list[dict[str, object]] = [
            {"name": name, "tier": "high"} for name in (SERVICE, FLAP_SERVICE, RECUR_SERVICE)
        ]
        catalogue += [
            {"name": name, "tier": "high", "targets": {"P1": {"respond": f"{respond:g}s"}}}
            for name, respond in ((SLA_FIRST, RESPOND_FIRST), (SLA_SECOND, RESPOND_SECOND))
        ]
        super().write_rules(services or {"services": catalogue})

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.gate.stop()

    def kill_leader(self, leader: int) -> int:
        """kill -9 the leader under sustained ingest; the replica that leads next, once ingest flows again."""
        assert self.load is not None and self.load.acked > 0, "no ingest acknowledged before the kill"
        self.replicas[leader].kill()
        successor = self.wait_leader(other_than=leader, timeout=TAKEOVER)
        self.load.flowing()
        return successor

    def all_up(self) -> None:
        """Restart the replicas an earlier kill left down, so each test starts with three."""
        for i, proc in enumerate(self.replicas):
            if not proc.running():
                self.start_replica(i)


class Ingest:
    """Sustained ingest while the tests kill leaders: a few senders posting new alerts round-robin to every
    replica, retrying on refusal as Prometheus would."""

    WORKERS = 2
    PER_REQUEST = 5

    def __init__(self, urls: list[str]) -> None:
        self._urls = urls
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = itertools.count()
        self.acked = self.refused = 0
        self._threads = [threading.Thread(target=self._send, args=(w,), daemon=True) for w in range(self.WORKERS)]

    def __enter__(self) -> Ingest:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _send(self, worker: int) -> None:
        while not self._stop.is_set():
            n = next(self._sent)
            body = [
                {"labels": {"alertname": "RunbookLoad", "service": "load", "instance": f"w{worker}-{n}-{k}"}}
                for k in range(self.PER_REQUEST)
            ]
            try:
                ok = request("POST", f"{self._urls[n % len(self._urls)]}/api/v2/alerts", body).status == 200
            except OSError:
                ok = False
            with self._lock:
                if ok:
                    self.acked += 1
                else:
                    self.refused += 1
            if not ok:
                self._stop.wait(0.05)  # a sender's retry delay, not a wait for an event

    def flowing(self) -> None:
        """Acknowledged requests keep coming: 10 more than now."""
        before = self.acked
        wait_until(lambda: self.acked >= before + 10, timeout=30, what="ingest to be acknowledged")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunbookReplicas]:
    for stack in module_stack(RunbookReplicas, tmp_path_factory.mktemp("replicas_runbooks")):
        with Ingest(stack.urls) as load:
            stack.load = load
            yield stack
        print(f"\ningest during the module: {load.acked} requests acknowledged, {load.refused} refused or failed")


def _start_run(stack: RunbookReplicas, via: int, runbook: str) -> int:
    resp = request("POST", f"{stack.urls[via]}/api/v1/runs", {"runbook": runbook})
    assert resp.status == 201, resp.text()
    run_id: int = resp.json()["id"]
    return run_id


def _run(url: str, run_id: int) -> Any:
    return get_json(f"{url}/api/v1/runs/{run_id}")


def _journal(stack: RunbookReplicas, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run and its steps as PostgreSQL holds them."""
    (run,) = query(stack.dsn, "SELECT id, runbook, status, reason FROM runs WHERE id = %s", (run_id,))
    steps = query(
        stack.dsn,
        "SELECT idx, step_index, name, phase, status, attempts, summary FROM run_steps WHERE run_id = %s ORDER BY idx",
        (run_id,),
    )
    return run, steps


def _show(what: str, api: Any, stored: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    print(f"\n{what}: API status {api['status']!r}, reason {api.get('reason')!r}")
    for step in api["steps"]:
        print(f"  api  {step['name']}: {step['status']} ({step.get('summary')!r})")
    run, steps = stored
    print(f"  pg   runs: status {run['status']!r}, reason {run['reason']!r}")
    for step in steps:
        print(
            f"  pg   run_steps idx {step['idx']} {step['name']} {step['phase']}: {step['status']} {step['summary']!r}"
        )


def _mid_step(stack: RunbookReplicas, runbook: str, path: str) -> tuple[int, int, Call]:
    """Start a run through a follower, await its step's call on the gate; the leader, the run id and the call."""
    stack.all_up()
    leader = stack.wait_leader()
    follower = (leader + 1) % len(stack.replicas)
    run_id = _start_run(stack, follower, runbook)
    (call,) = stack.gate.wait_calls(path, 1, timeout=30)
    assert call.pid == stack.replicas[leader].pid, (call, leader)
    assert (call.run, call.key) == (str(run_id), f"run-{run_id}-{path.strip('/').replace('/', '-')}")
    # The step was journaled (and committed) before it acted.
    _, steps = _journal(stack, run_id)
    assert [(s["name"], s["status"]) for s in steps] == [("call", "running")], steps
    return leader, run_id, call


def test_a_non_idempotent_step_in_flight_at_kill9_is_held_and_never_called_again(replicas: RunbookReplicas) -> None:
    path = "/block/fragile"
    leader, run_id, _ = _mid_step(replicas, "fragile-call", path)

    successor = replicas.kill_leader(leader)
    held = wait_for(
        lambda: _run(replicas.urls[successor], run_id),
        lambda r: r["status"] in TERMINAL,
        timeout=30,
        what="the new leader's recovery of the run",
        describe=replicas.describe,
    )
    _show("held run", held, _journal(replicas, run_id))
    assert held["status"] == "held", held
    assert "not idempotent" in held["reason"], held
    assert [(s["name"], s["status"]) for s in held["steps"]] == [("call", "interrupted")]
    run, steps = _journal(replicas, run_id)
    assert run["status"] == "held"
    assert [(s["name"], s["phase"], s["status"]) for s in steps] == [("call", "do", "interrupted")], steps
    assert len(replicas.gate.calls(path)) == 1, replicas.gate.calls(path)

    # A held run stays held through the next failover too: recovery does not look at it again.
    replicas.start_replica(leader)
    third = replicas.kill_leader(successor)
    again = _run(replicas.urls[third], run_id)
    assert (again["status"], [(s["name"], s["status"]) for s in again["steps"]]) == (
        "held",
        [("call", "interrupted")],
    )
    assert _journal(replicas, run_id)[0]["status"] == "held"
    assert len(replicas.gate.calls(path)) == 1, replicas.gate.calls(path)

    # A human looks, then ends it.
    resp = request("POST", f"{replicas.urls[third]}/api/v1/runs/{run_id}/cancel", {"by": "ann", "reason": "checked"})
    assert resp.status == 200, resp.text()
    assert _journal(replicas, run_id)[0]["status"] == "cancelled"
    assert len(replicas.gate.calls(path)) == 1


def test_an_idempotent_step_in_flight_at_kill9_is_run_once_more_by_the_new_leader(replicas: RunbookReplicas) -> None:
    path = "/block/resumable"
    leader, run_id, first = _mid_step(replicas, "resumable-call", path)

    successor = replicas.kill_leader(leader)
    done = wait_for(
        lambda: _run(replicas.urls[successor], run_id),
        lambda r: r["status"] in TERMINAL,
        timeout=30,
        what="the resumed run",
        describe=replicas.describe,
    )
    _show("resumed run", done, _journal(replicas, run_id))
    assert done["status"] == "succeeded", done
    assert [(s["name"], s["status"]) for s in done["steps"]] == [
        ("call", "interrupted"),
        ("call", "succeeded"),
        ("after", "succeeded"),
    ]
    run, steps = _journal(replicas, run_id)
    assert run["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in steps] == [
        ("call", "interrupted"),
        ("call", "succeeded"),
        ("after", "succeeded"),
    ], steps
    calls = replicas.gate.calls(path)
    assert len(calls) == 2, calls
    assert calls[0] == first
    # The re-run came from the new leader's process, with the same run id and idempotency key as the first.
    assert calls[1] == Call(path, first.run, first.key, replicas.replicas[successor].pid), calls
    assert [c.pid for c in replicas.gate.calls("/pass/resumable-after")] == [replicas.replicas[successor].pid]


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _counter(url: str, name: str, **labels: str) -> float | None:
    resp = request("GET", f"{url}/metrics", timeout=5.0)
    assert resp.status == 200, resp.status
    for metric, body, value in _SAMPLE.findall(resp.text()):
        if metric == name and labels.items() <= dict(_LABEL.findall(body)).items():
            return float(value)
    return None


def _incident(stack: RunbookReplicas, service: str) -> dict[str, Any]:
    (row,) = query(stack.dsn, "SELECT id, opened_at, respond_by, sla FROM incidents WHERE service = %s", (service,))
    return row


def _opened(stack: RunbookReplicas, service: str) -> int:
    def found() -> list[dict[str, Any]]:
        return query(stack.dsn, "SELECT id FROM incidents WHERE service = %s", (service,))

    return int(wait_until(found, timeout=20, what=f"the incident of {service}")[0]["id"])


def _breaches(stack: RunbookReplicas, incident_id: int) -> list[dict[str, Any]]:
    rows = query(
        stack.dsn,
        "SELECT id, at, detail FROM timeline WHERE incident_id = %s AND kind = 'sla_breached'",
        (incident_id,),
    )
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


def _audited(stack: RunbookReplicas, incident_id: int) -> int:
    rows = query(
        stack.dsn,
        "SELECT count(*) AS n FROM audit_events WHERE record_type = 'incident' AND record_id = %s "
        "AND action = 'sla_breached'",
        (str(incident_id),),
    )
    return int(rows[0]["n"])


def test_sla_breaches_around_a_kill9_are_recorded_once(replicas: RunbookReplicas) -> None:
    replicas.all_up()
    leader = replicas.wait_leader()
    alerts = [
        {"labels": {"alertname": "SlaProbe", "service": s, "severity": "critical", "instance": "probe-1"}}
        for s in (SLA_FIRST, SLA_SECOND)
    ]
    resp = request("POST", f"{replicas.urls[leader]}/api/v2/alerts", alerts)
    assert resp.status == 200, resp.text()
    first, second = (_opened(replicas, s) for s in (SLA_FIRST, SLA_SECOND))
    # The leader records the first breach at its deadline; kill it as soon as the breach is in the store.
    wait_until(lambda: _breaches(replicas, first), timeout=RESPOND_FIRST + 20, what="the first breach")
    killed_at = time.time()
    successor = replicas.kill_leader(leader)
    # The second target fell due around the takeover; once the new leader has recorded it, it has run every
    # deadline due (the first one included) at least once.
    wait_until(lambda: _breaches(replicas, second), timeout=RESPOND_SECOND + 20, what="the second breach")

    for service, incident_id in ((SLA_FIRST, first), (SLA_SECOND, second)):
        row = _incident(replicas, service)
        breaches = _breaches(replicas, incident_id)
        by = "the killed leader" if breaches and breaches[0]["at"] < killed_at else "the new leader"
        print(
            f"\n{service}: incident {incident_id}, respond_by {row['respond_by']:.3f} "
            f"({row['respond_by'] - killed_at:+.2f}s from the kill), sla {row['sla']}; breaches {breaches}, "
            f"recorded by {by}"
        )
        assert [b["detail"]["target"] for b in breaches] == ["respond"], breaches
        assert breaches[0]["at"] >= row["respond_by"], (breaches, row)
        assert _audited(replicas, incident_id) == 1
        assert _counter(replicas.urls[successor], BREACHES, service=service, target="respond") == 1.0
    # The new leader is the one that recorded the second breach when its deadline passed with no leader.
    if _incident(replicas, SLA_SECOND)["respond_by"] > killed_at:
        assert _breaches(replicas, second)[0]["at"] > killed_at
