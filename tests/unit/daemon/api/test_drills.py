"""The drills API, `itsmd drill run` and the drill metrics through the real app (real store, ManualClock)."""

from __future__ import annotations

import argparse
import asyncio
import io
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from daemon.clock import ManualClock
from daemon.drills import cli as drill_cli
from tests.postgres import stored
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running, series

QUICK = """
name: quick
trigger: {on: [drill]}
steps:
  - {name: act, exec: {argv: ["true"]}}
verify:
  - {name: check, exec: {argv: ["true"]}}
"""
GATED = """
name: gated
trigger: {on: [drill]}
steps:
  - {name: ask, approval: {who: [sre], timeout: 1h}}
"""
DRILLS = """
drills:
  - name: checkout-failover
    service: checkout
    runbook: quick
    schedule: "0 3 * * 2"
    time_zone: Europe/Berlin
    rto: 5m
    rpo: 1m
    recovery: {verify: true}
  - name: checkout-gated
    service: checkout
    runbook: gated
    schedule: "@every 1h"
    rto: 5m
    recovery: {verify: true}
  - name: db-off
    service: db
    runbook: quick
    schedule: "0 4 * * *"
    rto: 1m
    recovery: {verify: true}
    enabled: false
"""


def setup(folder: Path, drills: str = DRILLS) -> Path:
    config = write_setup(folder, {"quick": QUICK, "gated": GATED})
    (folder / "rules" / "drills.yaml").write_text(textwrap.dedent(drills), encoding="utf-8")
    return config


async def drill_outcome(d: Daemon, name: str, drill_run: int) -> dict[str, object]:
    seen: dict[str, dict[str, object]] = {}

    async def ended() -> bool:
        last = (await d.get_json(f"/api/v1/drills/{name}"))["last"]
        seen["last"] = last
        return bool(last["id"] == drill_run and last["outcome"] != "running")

    await eventually(ended, 20.0)
    return seen["last"]


async def test_drills_listed_run_and_counted(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    async with running(config, tmp_path / "data", ManualClock()) as d:
        listed = (await d.get_json("/api/v1/drills"))["drills"]
        assert [x["name"] for x in listed] == ["checkout-failover", "checkout-gated", "db-off"]
        one = await d.get_json("/api/v1/drills/checkout-failover")
        assert one["schedule"] == "0 3 * * 2" and one["time_zone"] == "Europe/Berlin"
        assert one["rto_seconds"] == 300.0 and one["rpo_seconds"] == 60.0
        assert one["next_run"] is not None and one["next_run"].endswith("Z")
        assert one["last"] is None
        assert listed[2]["next_run"] is None  # disabled: no job
        before = await d.metrics()
        # Never passed is the worst case: stated, not left to a missing series (db's only drill is disabled).
        assert before[series("itsmd_drill_never_passed", service="checkout")] == 1
        assert series("itsmd_drill_never_passed", service="db") not in before
        assert series("itsmd_drill_last_success_timestamp_seconds", service="checkout") not in before

        status, body = await call(d, "GET", "/api/v1/drills/nope")
        assert status == 404 and body["reason"] == "not_found"
        status, body = await call(d, "POST", "/api/v1/drills/nope/run", {})
        assert status == 404

        status, started = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {"by": "alice"})
        assert status == 202 and started["outcome"] == "running" and started["requested_by"] == "anonymous"
        last = await drill_outcome(d, "checkout-failover", started["id"])
        assert last["outcome"] == "passed" and last["recovery_seconds"] == 0.0
        run = await d.get_json(f"/api/v1/runs/{started['run_id']}")
        assert run["mode"] == "drill" and run["service"] == "checkout" and run["status"] == "succeeded"

        metrics = await d.metrics()
        assert metrics[series("itsmd_drills_total", service="checkout", outcome="passed")] == 1
        assert metrics[series("itsmd_drills_total", service="db", outcome="failed")] == 0
        assert metrics[series("itsmd_drill_recovery_seconds", service="checkout")] == 0.0
        assert metrics[series("itsmd_drill_rto_seconds", service="checkout")] == 300.0
        assert metrics[series("itsmd_drill_last_success_timestamp_seconds", service="checkout")] == d.clock.now()
        assert metrics[series("itsmd_drill_never_passed", service="checkout")] == 0

        # One at a time per service: the gated drill waits for approval, so the other one is refused.
        status, gated = await call(d, "POST", "/api/v1/drills/checkout-gated/run", {})
        assert status == 202
        status, body = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {})
        assert status == 409 and body["reason"] == "drill_running"
        assert f"drill checkout-gated (drill run {gated['id']}) is running for service checkout" in body["error"]
        shown = await d.get_json("/api/v1/drills/checkout-failover")
        assert shown["service_running"]["id"] == gated["id"] and shown["running"] is None
        await until(d, gated["run_id"], "waiting_approval")
        status, _ = await call(d, "POST", f"/api/v1/runs/{gated['run_id']}/cancel", {"by": "alice"})
        assert status == 200
        last = await drill_outcome(d, "checkout-gated", gated["id"])
        assert last["outcome"] == "failed" and "ended aborted: cancelled by anonymous (on behalf of alice)" in str(
            last["reason"]
        )


async def test_drill_results_survive_a_restart(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        _, started = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {})
        await drill_outcome(d, "checkout-failover", started["id"])
        passed_at = clock.now()
    clock.advance(3600)
    async with running(config, tmp_path / "data", clock) as d:
        one = await d.get_json("/api/v1/drills/checkout-failover")
        assert one["last"]["id"] == started["id"] and one["last"]["outcome"] == "passed"
        metrics = await d.metrics()
        assert metrics[series("itsmd_drills_total", service="checkout", outcome="passed")] == 1
        assert metrics[series("itsmd_drill_last_success_timestamp_seconds", service="checkout")] == passed_at


async def test_a_drill_running_at_shutdown_is_stored_interrupted_at_that_instant(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        _, gated = await call(d, "POST", "/api/v1/drills/checkout-gated/run", {})
        await until(d, gated["run_id"], "waiting_approval")
        clock.advance(60)
        stopped_at = clock.now()
    clock.advance(3600)
    with stored(tmp_path / "data") as sql:
        row = sql.one("SELECT outcome, reason, ended_at FROM drill_runs WHERE id = ?", (gated["id"],))
    assert row is not None
    assert (row["outcome"], row["reason"], row["ended_at"]) == (
        "interrupted",
        "interrupted: the daemon shut down while the drill ran",
        stopped_at,
    )


async def test_reload_replaces_drills_and_keeps_the_last_good_ones(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    drills_file = tmp_path / "etc" / "rules" / "drills.yaml"
    async with running(config, tmp_path / "data", ManualClock()) as d:
        drills_file.write_text("drills:\n  - name: x\n    service: nowhere\n", encoding="utf-8")
        status, body = await call(d, "POST", "/-/reload")
        assert status == 400 and "drills.yaml:2: drills[0].runbook: is required" in body["error"]
        assert len((await d.get_json("/api/v1/drills"))["drills"]) == 3
        drills_file.write_text(textwrap.dedent(DRILLS).split("  - name: checkout-gated")[0], encoding="utf-8")
        status, _ = await call(d, "POST", "/-/reload")
        assert status == 200
        listed = (await d.get_json("/api/v1/drills"))["drills"]
        assert [x["name"] for x in listed] == ["checkout-failover"]
        assert listed[0]["next_run"] is not None


ORPHAN = """
  - name: orphan
    service: db
    runbook: gone
    schedule: "0 4 * * *"
    rto: 1m
    recovery: {verify: true}
    enabled: false
"""


async def test_cli_drill_run_waits_and_exits_by_outcome(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc", DRILLS + ORPHAN.lstrip("\n"))
    async with running(config, tmp_path / "data", ManualClock()) as d:
        url = str(d.client.make_url("/")).rstrip("/")
        args = argparse.Namespace(verb="run", name="checkout-failover", url=url, token_file=None, timeout=5.0, by="bob")
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(drill_cli.main, args, out, err, sleep=lambda _: None)
        assert code == 0, err.getvalue()
        assert "drill checkout-failover: passed, recovery 0.0s (RTO 300s)" in out.getvalue()
        assert "step 2 check (exec) [verify]: succeeded" in out.getvalue()  # the run-level check, with its action
        args.name = "orphan"
        code = await asyncio.to_thread(drill_cli.main, args, out, err, sleep=lambda _: None)
        assert code == 1
        assert "drill orphan: drill run 2, no runbook run started" in out.getvalue()
        assert "None" not in out.getvalue()
        args.name = "nope"
        code = await asyncio.to_thread(drill_cli.main, args, out, err, sleep=lambda _: None)
        assert code == 1 and "HTTP 404 not_found: no drill named 'nope'" in err.getvalue()


async def test_the_service_report_lists_the_drill_with_its_rto_result(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        _, started = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {})
        await drill_outcome(d, "checkout-failover", started["id"])
        period = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m")
        status, report = await call(d, "GET", f"/api/v1/reports/{period}?service=checkout")
    assert status == 200, report
    (checkout,) = report["services"]
    assert [
        (x["name"], x["outcome"], x["recovery_seconds"], x["rto_seconds"], x["met_rto"]) for x in checkout["drills"]
    ] == [("checkout-failover", "passed", 0.0, 300.0, True)]


async def test_a_drill_is_a_change_suspected_only_for_incidents_of_its_own_service(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        _, started = await call(d, "POST", "/api/v1/drills/checkout-failover/run", {})
        await drill_outcome(d, "checkout-failover", started["id"])
        (change,) = (await d.get_json("/api/v1/changes"))["changes"]
        assert (change["mode"], change["service"], change["run_id"]) == ("drill", "checkout", started["run_id"])
        clock.advance(30)
        at = datetime.fromtimestamp(clock.now(), UTC).isoformat().replace("+00:00", "Z")
        for labels in ({"alertname": "DbDown", "service": "db"}, {"alertname": "NoService"}):
            status, _ = await d.v2([{"labels": labels, "startsAt": at}])
            assert status == 200
        status, _ = await d.v2([{"labels": {"alertname": "CheckoutDown", "service": "checkout"}, "startsAt": at}])
        assert status == 200
        suspects = {i["service"]: i["suspected_change"] for i in await d.incidents()}
    # Another service's incident (and one of no listed service) does not name checkout's drill; checkout's does.
    assert suspects == {"db": None, "unknown": None, "checkout": change["id"]}
