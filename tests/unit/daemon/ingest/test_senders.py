"""Who sent an alert: itsmd_alerts_received_total{source} tells Alertmanager, Prometheus, amtool and others apart."""

from __future__ import annotations

import pytest

from tests.unit.daemon.ingest.conftest import PROM_FIRING_UA, Daemon, capture, series

RECEIVED = "itsmd_alerts_received_total"
SENDERS = ("alertmanager", "prometheus", "amtool", "other")


def received(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    return {s: metrics[series(RECEIVED, source=s)] for s in SENDERS}


async def test_every_source_exists_at_zero_from_the_start(daemon: Daemon) -> None:
    assert received(await daemon.metrics()) == dict.fromkeys(SENDERS, 0.0)


@pytest.mark.parametrize(
    ("user_agent", "source"),
    [
        ("Prometheus/2.42.0", "prometheus"),
        (PROM_FIRING_UA, "prometheus"),  # Debian's build, as captured
        ("Go-http-client/1.1", "amtool"),  # what amtool 0.25 sends (it sets no User-Agent of its own)
        ("amtool/0.27.0", "amtool"),
        ("curl/8.5.0", "other"),
        ("", "other"),
        ("prometheus-but-not-really", "other"),
    ],
)
async def test_posted_alerts_are_counted_by_who_sent_them(daemon: Daemon, user_agent: str, source: str) -> None:
    body = capture("prometheus_post_api_v2_alerts_firing.json")
    daemon.at("2026-11-23T18:15:57.061Z")
    status, _ = await daemon.post("/api/v2/alerts", body, headers={"User-Agent": user_agent})
    assert status == 200
    counts = received(await daemon.metrics())
    assert counts == {s: (float(len(body)) if s == source else 0.0) for s in SENDERS}


async def test_the_webhook_is_alertmanager_whatever_it_says(daemon: Daemon) -> None:
    body = capture("am_webhook_firing_single_targetdown.json")
    daemon.at("2026-11-23T18:15:57.061Z")
    status, _ = await daemon.post("/webhook/alertmanager", body, headers={"User-Agent": "curl/8.5.0"})
    assert status == 200
    assert received(await daemon.metrics())["alertmanager"] == len(body["alerts"])


async def test_the_stored_sources_are_still_the_path(daemon: Daemon) -> None:
    body = capture("prometheus_post_api_v2_alerts_firing.json")
    daemon.at("2026-11-23T18:15:57.061Z")
    status, _ = await daemon.post("/api/v2/alerts", body, headers={"User-Agent": "Go-http-client/1.1"})
    assert status == 200
    assert {tuple(a["sources"]) for a in await daemon.alerts()} == {("prometheus",)}
