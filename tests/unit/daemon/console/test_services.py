"""The console's services page against the real app: catalogue, the tracker's figures, windows, drills."""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import write_setup
from tests.unit.daemon.console.test_pages import READ_TOKEN, XSS, alert, login, text
from tests.unit.daemon.ingest.conftest import Daemon, epoch, eventually, running, series

START = "2026-11-23T18:00:00Z"
QUICK = """
name: quick
trigger: {on: [drill]}
steps:
  - {name: act, exec: {argv: ["true"]}}
"""
SERVICES = f"""
services:
  - name: checkout
    owner: 'alice {XSS}'
    team: 'web {XSS}'
    tier: high
    description: 'the shop {XSS}'
    availability_objective: 0.999
    targets: {{P1: {{respond: 10m, resolve: 2h}}}}
    maintenance:
      - {{name: 'db upgrade', start: '2026-11-23T17:00:00Z', end: '2026-11-23T17:30:00Z'}}
      - {{name: nightly, cron: '0 2 * * *', duration: 30m}}
  - name: api
    owner: bob
    team: platform
    tier: low
    maintenance:
      - {{name: 'now {XSS}', start: '2026-11-23T17:00:00Z', end: '2026-11-23T23:00:00Z'}}
"""
DRILLS = """
drills:
  - name: checkout-failover
    service: checkout
    runbook: quick
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {verify: true}
  - name: api-off
    service: api
    runbook: quick
    schedule: "0 4 * * *"
    rto: 1m
    recovery: {verify: true}
    enabled: false
"""


def configure(folder: Path, extra: str = "") -> Path:
    config = write_setup(folder, {"quick": QUICK}, extra)
    (folder / "rules" / "services.yaml").write_text(textwrap.dedent(SERVICES), encoding="utf-8")
    (folder / "rules" / "drills.yaml").write_text(textwrap.dedent(DRILLS), encoding="utf-8")
    return config


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running(configure(tmp_path / "etc"), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        yield d


def section(page: str, name: str) -> str:
    found = re.search(rf'<section class="service" id="svc-\d+" aria-label="service {name}">(.*?)</section>', page, re.S)
    assert found is not None, name
    return found.group(1)


def row(page: str, name: str) -> str:
    found = re.search(rf'<tr>\s*<td><a href="#svc-\d+">{name}</a>(.*?)</tr>', page, re.S)
    assert found is not None, name
    return found.group(1)


def percent(value: float) -> str:
    return f"{value * 100:.3f} %"


async def test_services_show_the_catalogue_the_tracker_and_open_incidents(shop: Daemon) -> None:
    assert (await shop.v2([alert(service="checkout", severity="critical")]))[0] == 200
    assert (await shop.v2([alert(service="checkout", alertname="Slow", severity="warning")]))[0] == 200
    shop.clock.advance(3600)
    page = await text(shop, "/services")
    metrics = await shop.metrics()

    checkout = row(page, "checkout")
    for window in ("1d", "7d", "30d"):
        availability = metrics[series("itsmd_service_availability_ratio", service="checkout", window=window)]
        budget = metrics[series("itsmd_service_error_budget_remaining_ratio", service="checkout", window=window)]
        assert budget <= 0  # an hour of P1 spends more than 0.1 % of 30 days
        assert f'<td class="num bad">{percent(availability)}</td>' in checkout
        assert f'<td class="num budget bad">{percent(budget)}</td>' in checkout
    assert '<a href="/incidents?service=checkout">2</a>' in checkout
    assert "99.900 %" in checkout and "high" in checkout

    api = row(page, "api")
    assert '<td class="num budget">100.000 %</td>' in api and "bad" not in api
    assert '<a href="/incidents?service=api">0</a>' in api
    assert "in maintenance" in api

    details = section(page, "checkout")
    assert "<td>10m</td><td>2h</td>" in details  # the P1 override
    assert "<td>30m</td><td>8h</td>" in details  # P2 keeps the default
    assert "<td>by agreement</td><td>by agreement</td>" in details  # P5 has none
    assert "1h0m0s" not in details and "1h" in details  # unplanned downtime of the 1d window
    assert "Next: nightly, 2026-11-24 02:00 UTC to 2026-11-24 02:30 UTC" in details
    assert "Now:" not in details  # the upgrade window ended before the clock's start
    assert "checkout-failover" in details and "never run" in details
    drills = {d["name"]: d for d in (await shop.get_json("/api/v1/drills"))["drills"]}
    next_run = drills["checkout-failover"]["next_run"]  # the scheduler's, as the API says
    assert f"<td>{next_run[:10]} {next_run[11:16]} UTC</td>" in details

    api_details = section(page, "api")
    assert "2026-11-23 17:00 UTC to 2026-11-23 23:00 UTC" in api_details
    assert "api-off" in api_details and "disabled" in api_details


async def test_hostile_catalogue_strings_are_text(shop: Daemon) -> None:
    page = await text(shop, "/services")
    assert "<script>alert" not in page and "<img src=x" not in page
    escaped = html.escape(XSS, quote=False).replace('"', "&#34;")
    for shown in (f"the shop {escaped}", f"owner alice {escaped}", f"team web {escaped}", f"Now: now {escaped}, "):
        assert shown in page, shown


async def test_a_viewer_reads_the_services_page(tmp_path: Path) -> None:
    (tmp_path / "read.token").write_text(READ_TOKEN)
    extra = f"auth:\n  api:\n    read_tokens: [{{token_file: {tmp_path / 'read.token'}}}]\n"
    async with running(configure(tmp_path / "etc", extra), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        async with d.client.get("/services", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        await login(d, READ_TOKEN)
        page = await text(d, "/services")
        assert "checkout" in page and 'aria-current="page">Services' in page
        async with d.client.get("/services") as resp:
            assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]


async def test_a_drills_last_result_is_the_runners(shop: Daemon) -> None:
    async with shop.client.post("/api/v1/drills/checkout-failover/run", json={}) as resp:
        assert resp.status == 202
        started = await resp.json()

    async def ended() -> bool:
        last = (await shop.get_json("/api/v1/drills/checkout-failover"))["last"]
        return bool(last["id"] == started["id"] and last["outcome"] != "running")

    await eventually(ended, 20.0)
    last = (await shop.get_json("/api/v1/drills/checkout-failover"))["last"]
    details = section(await text(shop, "/services"), "checkout")
    when = f"{last['started_at'][:10]} {last['started_at'][11:16]} UTC"
    assert f'<span class="outcome {last["outcome"]}">{last["outcome"]}</span> {when}' in details
    assert last["outcome"] == "passed" and "never run" not in details
