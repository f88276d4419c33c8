"""The drill runner with a real engine, SQLite store and writer, time moved by hand (ManualClock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.api.errors import status_of
from daemon.drills.model import DrillOutcome
from daemon.drills.runner import DRILLS_TOTAL, DrillBusy, DrillRunner
from daemon.drills.spec import Drill, Recovery
from daemon.errors import RequestError
from daemon.model import Incident, IncidentStatus
from daemon.storage.drills import drill_results, load_drill_state
from integrations.prometheus.client import PrometheusClient
from tests.unit.daemon.runbook.harness import Harness, write_runbook

QUICK = """
name: quick
trigger: {on: [drill]}
steps:
  - {name: act, exec: {argv: ["true"]}}
verify:
  - {name: check, exec: {argv: ["true"]}}
"""
SLOW = """
name: slow
trigger: {on: [drill]}
steps:
  - {name: wait, sleep: {duration: 2m}}
"""
BROKEN = """
name: broken
trigger: {on: [drill]}
on_failure: stop
steps:
  - {name: act, exec: {argv: ["false"]}}
"""


def drill(name: str, runbook: str, *, rto: float = 60.0, service: str = "checkout", **more: Any) -> Drill:
    recovery = more.pop("recovery", Recovery(verify=True))
    return Drill(name=name, service=service, runbook=runbook, schedule="0 3 * * 2", rto=rto, recovery=recovery, **more)


class Setup:
    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.incidents: list[Incident] = []
        self.runner: DrillRunner

    async def start(self, drills: list[Drill], prometheus: PrometheusClient | None = None) -> DrillRunner:
        folder = self.h.folder / "runbooks"
        paths = [write_runbook(folder, text) for text in (QUICK, SLOW, BROKEN)]
        await self.h.start(paths)
        self.runner = DrillRunner(
            writer=self.h.writer,
            engine=self.h.engine,
            clock=self.h.clock,
            tasks=self.h.tasks,
            counters=self.h.counters,
            incidents=lambda: self.incidents,
            prometheus=prometheus,
            sleep=self.h.sleeper,
        )
        self.runner.restore(load_drill_state(self.h.db.primary))
        self.runner.set_drills(drills)
        return self.runner

    def count(self, outcome: str, service: str = "checkout") -> float:
        return self.h.counters.get(DRILLS_TOTAL, (("outcome", outcome), ("service", service)))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    s = Setup(Harness(tmp_path))
    yield s
    if s.h.db._conn is not None:
        await s.h.stop()


async def test_a_drill_passes_when_the_run_succeeds_within_the_rto(setup: Setup) -> None:
    runner = await setup.start([drill("d", "quick")])
    d = await runner.wait(runner.start("d", trigger="manual", requested_by="tester"))
    assert d.outcome is DrillOutcome.PASSED, d.reason
    assert d.recovery_seconds == 0.0
    assert setup.count("passed") == 1 and setup.count("failed") == 0
    assert runner.last_success["checkout"] == setup.h.clock.now()
    run = setup.h.engine.get(d.run_id or 0)
    assert run is not None and run.mode.value == "drill" and run.service == "checkout"
    await runner.durable(5.0)
    stored = setup.h.stored("SELECT drill, outcome, recovery_seconds, rto_seconds FROM drill_runs")
    assert stored == [("d", "passed", 0.0, 60.0)]


async def test_a_drill_fails_when_recovery_is_slower_than_the_rto(setup: Setup) -> None:
    runner = await setup.start([drill("d", "slow", rto=60.0)])
    d = runner.start("d", trigger="schedule", requested_by="scheduler")
    await setup.h.until_sleeping()
    setup.h.sleeper.advance(120.0)
    await runner.wait(d)
    assert d.outcome is DrillOutcome.FAILED
    assert d.recovery_seconds == 120.0
    assert "slower than the RTO of 1m" in d.reason
    assert setup.count("failed") == 1
    assert "checkout" not in runner.last_success


async def test_a_drill_fails_when_its_run_fails(setup: Setup) -> None:
    runner = await setup.start([drill("d", "broken")])
    d = await runner.wait(runner.start("d", trigger="manual", requested_by="tester"))
    assert d.outcome is DrillOutcome.FAILED
    assert "ended failed" in d.reason and d.recovery_seconds is None


async def test_no_drill_during_an_open_p1_incident_of_the_service(setup: Setup) -> None:
    runner = await setup.start([drill("d", "quick"), drill("other", "quick", service="search")])
    setup.incidents.append(Incident(7, "k", "checkout", "down", IncidentStatus.OPEN, 0.0, priority="P1"))
    d = runner.start("d", trigger="schedule", requested_by="scheduler")
    assert d.outcome is DrillOutcome.SKIPPED
    assert d.reason == "service checkout has open P1 incident 7: no drills during it"
    assert d.run_id is None and setup.h.engine.runs() == []
    assert setup.count("skipped") == 1
    # Another service's drill, and a P3 incident, do not block.
    setup.incidents.append(Incident(8, "k2", "search", "slow", IncidentStatus.OPEN, 0.0, priority="P3"))
    other = await runner.wait(runner.start("other", trigger="schedule", requested_by="scheduler"))
    assert other.outcome is DrillOutcome.PASSED


async def test_one_drill_at_a_time_per_service(setup: Setup) -> None:
    runner = await setup.start([drill("long", "slow", rto=600.0), drill("short", "quick")])
    first = runner.start("long", trigger="manual", requested_by="tester")
    await setup.h.until_sleeping()
    with pytest.raises(DrillBusy) as refused:
        runner.start("short", trigger="manual", requested_by="tester")
    assert status_of(refused.value) == 409 and "drill long (drill run 1) is running for service checkout" in str(
        refused.value
    )
    skipped = runner.start("short", trigger="schedule", requested_by="scheduler")
    assert skipped.outcome is DrillOutcome.SKIPPED and "drill long" in skipped.reason
    setup.h.sleeper.advance(120.0)
    assert (await runner.wait(first)).outcome is DrillOutcome.PASSED
    after = await runner.wait(runner.start("short", trigger="manual", requested_by="tester"))
    assert after.outcome is DrillOutcome.PASSED


async def test_unknown_drill_is_404(setup: Setup) -> None:
    runner = await setup.start([])
    with pytest.raises(RequestError) as refused:
        runner.start("nope", trigger="manual", requested_by="tester")
    assert status_of(refused.value) == 404


async def test_a_restart_keeps_the_last_success_and_records_a_crashed_drill_interrupted(tmp_path: Path) -> None:
    first = Setup(Harness(tmp_path))
    runner = await first.start([drill("d", "quick"), drill("long", "slow", service="search")])
    passed = await runner.wait(runner.start("d", trigger="manual", requested_by="tester"))
    running = runner.start("long", trigger="manual", requested_by="tester")
    await first.h.until_sleeping()
    await runner.durable(5.0)
    await first.h.crash()

    second = Setup(Harness(tmp_path, first.h.clock))
    again = await second.start([drill("d", "quick"), drill("long", "slow", service="search")])
    assert again.last_success == {"checkout": passed.ended_at}
    assert again.last_recovery == {"checkout": 0.0}
    assert again.last["long"].id == running.id
    assert again.last["long"].outcome is DrillOutcome.INTERRUPTED
    assert again.last["long"].reason.startswith("interrupted")
    assert "found at the next start" in again.last["long"].reason
    assert second.count("passed") == 1 and second.count("interrupted", "search") == 1
    assert second.count("failed", "search") == 0
    await again.durable(5.0)
    results = drill_results(second.h.db.primary, 0.0, second.h.clock.now() + 1)
    assert [(r.name, r.outcome, r.met_rto) for r in results["checkout"]] == [("d", "passed", True)]
    assert [(r.name, r.outcome) for r in results["search"]] == [("long", "interrupted")]
    await second.h.stop()


async def test_a_shutdown_records_a_running_drill_interrupted_when_it_stops(tmp_path: Path) -> None:
    first = Setup(Harness(tmp_path))
    runner = await first.start([drill("long", "slow", service="search")])
    running = runner.start("long", trigger="manual", requested_by="tester")
    await first.h.until_sleeping()
    first.h.clock.advance(30.0)  # the sleeper's due time is 2 min away: the run is still in its step
    stopped_at = first.h.clock.now()
    await first.h.engine.close(0.2)
    runner.close()  # as the app's shutdown does, before the writer's last commit
    await first.h.stop()
    assert running.outcome is DrillOutcome.INTERRUPTED
    assert running.reason == "interrupted: the daemon shut down while the drill ran"
    assert running.ended_at == stopped_at
    assert first.count("interrupted", "search") == 1 and first.count("failed", "search") == 0

    first.h.clock.advance(600.0)
    second = Setup(Harness(tmp_path, first.h.clock))
    again = await second.start([drill("long", "slow", service="search")])
    stored = again.last["long"]
    assert (stored.outcome, stored.ended_at) == (DrillOutcome.INTERRUPTED, stopped_at)
    assert second.count("interrupted", "search") == 1  # not counted a second time at the start
    await second.h.stop()


class FakePrometheus:
    """A real HTTP server speaking the Prometheus query API: empty until `recovered` is set."""

    def __init__(self) -> None:
        self.recovered = False
        self.queries: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else request.query
        self.queries.append(str(form.get("query")))
        result = [{"metric": {"job": "db"}, "value": [0, "1"]}] if self.recovered else []
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return web.Response(text=json.dumps(body), content_type="application/json")


async def test_promql_recovery_is_the_first_poll_with_a_result(setup: Setup) -> None:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_route("*", "/api/v1/query", fake.handle)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        prometheus = PrometheusClient(session, str(server.make_url("/")))
        recovery = Recovery(promql='up{job="db"} == 1', interval=5.0)
        runner = await setup.start([drill("d", "quick", rto=12.0, recovery=recovery)], prometheus)
        d = runner.start("d", trigger="manual", requested_by="tester")
        await setup.h.until_sleeping()
        setup.h.sleeper.advance(5.0)
        await setup.h.until_sleeping()
        fake.recovered = True
        setup.h.sleeper.advance(5.0)
        await runner.wait(d)
        assert d.outcome is DrillOutcome.PASSED, d.reason
        assert d.recovery_seconds == 10.0
        assert fake.queries == ['up{job="db"} == 1'] * 3

        never = runner.start("d", trigger="manual", requested_by="tester")
        fake.recovered = False
        for _ in range(5):
            await setup.h.until_sleeping()
            setup.h.sleeper.advance(5.0)
            await asyncio.sleep(0)
            if never.outcome is not DrillOutcome.RUNNING:
                break
        await runner.wait(never)
        assert never.outcome is DrillOutcome.FAILED
        assert never.reason.startswith('never recovered: up{job="db"} == 1 returned nothing within 24s')
