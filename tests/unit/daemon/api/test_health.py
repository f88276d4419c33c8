"""GET /-/healthy, GET /-/ready and GET /metrics, and counters that survive a restart."""

from __future__ import annotations

import json
import platform
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from daemon import __version__
from daemon.app import create_app
from daemon.clock import ManualClock
from tests.unit.daemon.configfiles import load_test_config

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

README_METRICS = {
    # name: type, label names of its samples (the README's table)
    "itsmd_alerts_received": ("counter", {"source"}),
    "itsmd_alerts_rejected": ("counter", {"reason"}),
    "itsmd_incidents_opened": ("counter", {"service", "priority"}),
    "itsmd_incidents_resolved": ("counter", {"service", "priority", "resolved_by"}),
    "itsmd_incidents_reopened": ("counter", {"service"}),
    "itsmd_incidents_open": ("gauge", {"service", "priority"}),
    "itsmd_incident_sla_breaches": ("counter", {"service", "priority", "target"}),
    "itsmd_incidents_repeat": ("counter", {"service", "priority"}),
    "itsmd_incident_acknowledge_duration_seconds": ("histogram", {"priority"}),
    "itsmd_incident_resolution_duration_seconds": ("histogram", {"priority"}),
    "itsmd_problems_opened": ("counter", {"service"}),
    "itsmd_problems_open": ("gauge", {"service", "status"}),
    "itsmd_alerts_flapping": ("gauge", set()),
    "itsmd_config_last_reload_successful": ("gauge", set()),
    "itsmd_alerts_firing": ("gauge", set()),
    "itsmd_store_up": ("gauge", set()),
    "itsmd_audit_chain_ok": ("gauge", set()),
    "itsmd_audit_chain_head_sequence": ("gauge", set()),
    "itsmd_ingest_duration_seconds": ("histogram", set()),
    "itsmd_housekeeping_deleted": ("counter", {"record"}),
    "itsmd_housekeeping_last_run_timestamp_seconds": ("gauge", set()),
    "itsmd_build_info": ("gauge", {"version", "python"}),
}


SERVICES = """
services:
  - name: checkout
    tier: high
  - name: postgres
"""


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def captured(name: str) -> Any:
    return json.loads(next(TESTDATA.glob(f"*/{name}")).read_text())["body"]


@asynccontextmanager
async def running(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TestClient[Any, Any]]:
    config = tmp_path / "itsmd.yaml"
    if not config.exists():
        config.write_text("rules_dir: rules\n", encoding="utf-8")
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "correlation.yaml").write_text("{}\n", encoding="utf-8")
        (tmp_path / "rules" / "services.yaml").write_text(SERVICES, encoding="utf-8")
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(load_test_config(config, data_dir=tmp_path / "data"), clock=clock))
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=epoch("2026-11-23T18:15:59Z"))


@pytest.fixture
async def client(tmp_path: Path, clock: ManualClock) -> AsyncIterator[TestClient[Any, Any]]:
    async with running(tmp_path, clock) as c:
        yield c


async def scrape(client: TestClient[Any, Any]) -> tuple[str, Samples]:
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


PROMETHEUS = {"User-Agent": "Prometheus/2.42.0+ds"}
"""What the captured Prometheus posts carried: the received counter tells senders apart by it."""


async def post(client: TestClient[Any, Any], path: str, body: Any, headers: dict[str, str] | None = None) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body)
    async with client.post(path, data=data, headers=headers) as resp:
        return resp.status


async def traffic(client: TestClient[Any, Any], clock: ManualClock) -> None:
    """Some of everything: alerts by both paths, an incident opened and resolved, one reopened, rejects."""
    assert (
        await post(client, "/webhook/alertmanager", captured("am_webhook_firing_grouped_checkout_3_alerts.json")) == 200
    )
    assert (
        await post(client, "/api/v2/alerts", captured("prometheus_post_api_v2_alerts_firing.json"), PROMETHEUS) == 200
    )
    clock.advance(20)
    assert await post(client, "/webhook/alertmanager", captured("am_webhook_resolved_checkout.json")) == 200
    assert (
        await post(client, "/api/v2/alerts", captured("prometheus_post_api_v2_alerts_resolved.json"), PROMETHEUS) == 200
    )
    clock.advance(60)
    refire = captured("am_webhook_firing_grouped_checkout_3_alerts.json")
    refire["alerts"] = refire["alerts"][:1]
    refire["alerts"][0]["startsAt"] = "2026-11-23T18:17:00Z"
    assert await post(client, "/webhook/alertmanager", refire) == 200
    assert await post(client, "/webhook/alertmanager", b"not json") == 400
    assert await post(client, "/api/v2/alerts", [{"labels": {}}]) == 400


# -- health ----------------------------------------------------------------------------------------------


async def test_healthy(client: TestClient[Any, Any]) -> None:
    async with client.get("/-/healthy") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "healthy"


async def test_ready_after_start(client: TestClient[Any, Any]) -> None:
    async with client.get("/-/ready") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ready"


# -- metrics ---------------------------------------------------------------------------------------------


async def test_metrics_is_prometheus_text_format(client: TestClient[Any, Any]) -> None:
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_every_metric_of_the_readme_is_there_before_any_alert(client: TestClient[Any, Any]) -> None:
    text, samples = await scrape(client)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name, (kind, _) in README_METRICS.items():
        assert types.get(name) == kind, name
    assert any(name.startswith("process_") for name in types)
    assert samples[("itsmd_alerts_received_total", frozenset({("source", "alertmanager")}))] == 0
    assert samples[("itsmd_alerts_received_total", frozenset({("source", "prometheus")}))] == 0
    assert samples[("itsmd_store_up", frozenset())] == 1
    assert samples[("itsmd_alerts_firing", frozenset())] == 0
    assert samples[("itsmd_ingest_duration_seconds_count", frozenset())] == 0
    info = {dict(labels)["version"]: v for (n, labels), v in samples.items() if n == "itsmd_build_info"}
    assert info == {__version__: 1}
    python = {dict(labels)["python"] for (n, labels), v in samples.items() if n == "itsmd_build_info"}
    assert python == {platform.python_version()}


async def test_every_metric_of_the_readme_after_traffic(client: TestClient[Any, Any], clock: ManualClock) -> None:
    await traffic(client, clock)
    text, samples = await scrape(client)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, label_names) in README_METRICS.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == label_names, (name, sample)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("itsmd_alerts_received_total", source="alertmanager") == 3 + 2 + 1
    assert value("itsmd_alerts_received_total", source="prometheus") == 5 + 1
    assert value("itsmd_alerts_rejected_total", reason="invalid_json") == 1
    assert value("itsmd_alerts_rejected_total", reason="invalid_labels") == 1
    # checkout is a high-tier service and its alerts are critical: P1; postgres (medium) with warnings: P3
    assert value("itsmd_incidents_opened_total", service="checkout", priority="P1") == 1
    assert value("itsmd_incidents_resolved_total", service="checkout", priority="P1", resolved_by="alerts") == 1
    assert value("itsmd_incidents_reopened_total", service="checkout") == 1
    assert value("itsmd_incidents_opened_total", service="postgres", priority="P3") == 1
    assert value("itsmd_incidents_open", service="checkout", priority="P1") == 1
    assert value("itsmd_incidents_open", service="postgres", priority="P3") == 1
    assert value("itsmd_incidents_open", service="unknown", priority="P1") == 0
    assert value("itsmd_incident_resolution_duration_seconds_count", priority="P1") == 1
    assert value("itsmd_config_last_reload_successful") == 1
    assert value("itsmd_alerts_firing") == 5 + 1
    assert value("itsmd_ingest_duration_seconds_count") == 7
    assert value("itsmd_ingest_duration_seconds_bucket", le="+Inf") == 7
    assert value("itsmd_ingest_duration_seconds_sum") > 0


def _persisted(samples: Samples) -> Samples:
    """What must continue across a restart: counters and the histogram (not gauges, not process_*)."""
    keep = ("_total", "_bucket", "_count", "_sum")
    return {
        key: v
        for key, v in samples.items()
        if key[0].startswith("itsmd_") and key[0].endswith(keep) and not key[0].endswith("_created")
    }


async def test_counters_continue_across_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    async with running(tmp_path, clock) as first:
        await traffic(first, clock)
        _, before = await scrape(first)
    assert before[("itsmd_alerts_received_total", frozenset({("source", "alertmanager")}))] == 6

    async with running(tmp_path, clock) as second:
        _, after = await scrape(second)
        assert _persisted(after) == _persisted(before)
        assert after[("itsmd_alerts_firing", frozenset())] == before[("itsmd_alerts_firing", frozenset())]
        assert after[("itsmd_incidents_open", frozenset({("service", "checkout"), ("priority", "P1")}))] == 1

        # and they go on counting from there
        assert await post(second, "/webhook/alertmanager", b"{") == 400
        _, later = await scrape(second)
        key = ("itsmd_alerts_rejected_total", frozenset({("reason", "invalid_json")}))
        assert later[key] == before[key] + 1
