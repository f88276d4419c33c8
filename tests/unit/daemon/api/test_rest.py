"""GET /api/v1/incidents[/{id}] and GET /api/v1/alerts[/{fingerprint}] on the real app and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.clock import ManualClock
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.configfiles import load_test_config, write_rules

START = "2026-11-23T18:00:00Z"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Api:
    def __init__(self, client: TestClient[Any, Any], clock: ManualClock) -> None:
        self.client = client
        self.clock = clock
        self.started: dict[str, str] = {}

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.client.get(path) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()

    async def ok(self, path: str) -> Any:
        status, body = await self.get(path)
        assert status == 200, body
        return body

    async def post_v2(self, alerts: list[dict[str, Any]]) -> None:
        async with self.client.post("/api/v2/alerts", data=json.dumps(alerts)) as resp:
            assert resp.status == 200, await resp.text()

    async def fire(self, alertname: str, service: str = "api", instance: str = "i-1", ends_in: float = 600) -> str:
        """A firing alert (Prometheus style: endsAt ahead); returns its fingerprint."""
        labels = {"alertname": alertname, "service": service, "instance": instance}
        fp = fingerprint(labels)
        self.started[fp] = self.iso(-30)
        await self.post_v2([{"labels": labels, "startsAt": self.started[fp], "endsAt": self.iso(ends_in)}])
        return fp

    async def resolve(self, alertname: str, service: str = "api", instance: str = "i-1") -> None:
        """Prometheus' resolve of the episode fire() began: same startsAt, endsAt now."""
        labels = {"alertname": alertname, "service": service, "instance": instance}
        starts_at = self.started[fingerprint(labels)]
        await self.post_v2([{"labels": labels, "startsAt": starts_at, "endsAt": self.iso(0)}])

    def iso(self, offset: float) -> str:
        return datetime.fromtimestamp(self.clock.now() + offset).astimezone().isoformat()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    config = tmp_path / "itsmd.yaml"
    config.write_text("rules_dir: rules\nalerts:\n  sweep_interval: 20ms\n", encoding="utf-8")
    write_rules(tmp_path / "rules")
    clock = ManualClock(start=epoch(START))
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(load_test_config(config, data_dir=tmp_path), clock=clock))
    )
    await client.start_server()
    try:
        yield Api(client, clock)
    finally:
        await client.close()


@pytest.fixture
async def three_incidents(api: Api) -> Api:
    """Incidents 1 (Disk, resolved), 2 (Cpu, open, two alerts) and 3 (Mem, open)."""
    await api.fire("Disk")
    api.clock.advance(10)
    await api.fire("Cpu", instance="i-1")
    await api.fire("Cpu", instance="i-2")
    api.clock.advance(10)
    await api.fire("Mem", service="db")
    api.clock.advance(10)
    await api.resolve("Disk")
    return api


# -- incidents ---------------------------------------------------------------------------------------------


async def test_incidents_default_to_open_newest_first(three_incidents: Api) -> None:
    body = await three_incidents.ok("/api/v1/incidents")
    assert [(i["id"], i["status"]) for i in body["incidents"]] == [(3, "open"), (2, "open")]


@pytest.mark.parametrize(
    ("status", "ids"),
    [("open", [3, 2]), ("active", [3, 2]), ("resolved", [1]), ("all", [3, 2, 1])],
    ids=["open", "active", "resolved", "all"],
)
async def test_incident_status_filter(three_incidents: Api, status: str, ids: list[int]) -> None:
    body = await three_incidents.ok(f"/api/v1/incidents?status={status}")
    assert [i["id"] for i in body["incidents"]] == ids
    if status not in ("all", "active"):
        assert {i["status"] for i in body["incidents"]} == {status}


async def test_incident_list_fields(three_incidents: Api) -> None:
    body = await three_incidents.ok("/api/v1/incidents?status=all")
    by_id = {i["id"]: i for i in body["incidents"]}
    cpu = by_id[2]
    assert cpu["key"] == '{alertname="Cpu",service="api"}'
    assert (cpu["service"], cpu["alert_count"], cpu["resolved_at"]) == ("api", 2, None)
    assert cpu["title"]
    assert cpu["opened_at"] == "2026-11-23T18:00:10.000Z"
    assert by_id[3]["service"] == "db"
    disk = by_id[1]
    assert disk["resolved_at"] == "2026-11-23T18:00:30.000Z"


async def test_incident_detail_has_alerts_and_timeline(three_incidents: Api) -> None:
    detail = await three_incidents.ok("/api/v1/incidents/1")
    assert (detail["id"], detail["status"], detail["alert_count"]) == (1, "resolved", 1)
    [alert] = detail["alerts"]
    labels = {"alertname": "Disk", "service": "api", "instance": "i-1"}
    assert alert["fingerprint"] == fingerprint(labels)
    assert alert["labels"] == labels
    assert alert["annotations"] == {}
    assert alert["status"] == "resolved"
    assert alert["starts_at"] == "2026-11-23T17:59:30.000Z"
    assert alert["ends_at"] == "2026-11-23T18:00:30.000Z"
    assert [(t["kind"], t["at"]) for t in detail["timeline"]] == [
        ("opened", "2026-11-23T18:00:00.000Z"),
        ("alert_firing", "2026-11-23T18:00:00.000Z"),
        ("alert_resolved", "2026-11-23T18:00:30.000Z"),
        ("resolved", "2026-11-23T18:00:30.000Z"),
    ]
    assert all(isinstance(t["detail"], dict) for t in detail["timeline"])


@pytest.mark.parametrize("raw", ["999", "0", "-1", "abc", "1.0", "1e3", "%201", "0x1"])
async def test_unknown_or_malformed_incident_id_is_a_json_404(three_incidents: Api, raw: str) -> None:
    status, body = await three_incidents.get(f"/api/v1/incidents/{raw}")
    assert status == 404
    assert (body["status"], body["reason"]) == ("error", "not_found")


@pytest.mark.parametrize("raw", ["99999999999999999999", "%C2%B2"], ids=["beyond-int64", "superscript-two"])
async def test_incident_id_no_integer_column_can_hold_is_a_404(three_incidents: Api, raw: str) -> None:
    status, body = await three_incidents.get(f"/api/v1/incidents/{raw}")
    assert status == 404, body
    assert body["reason"] == "not_found"


# -- alerts ------------------------------------------------------------------------------------------------


async def test_alerts_default_to_all(three_incidents: Api) -> None:
    body = await three_incidents.ok("/api/v1/alerts")
    assert len(body["alerts"]) == 4
    assert {a["status"] for a in body["alerts"]} == {"firing", "resolved"}


async def test_alert_status_filter_including_expired(api: Api) -> None:
    firing = await api.fire("Up", ends_in=3600)
    resolved = await api.fire("Gone")
    await api.resolve("Gone")
    expiring = await api.fire("Stale", ends_in=60)
    api.clock.advance(61)  # Prometheus stopped re-sending Stale: it expires at its endsAt

    deadline = time.monotonic() + 10
    while (await api.ok(f"/api/v1/alerts/{expiring}"))["status"] != "expired":
        assert time.monotonic() < deadline, "the sweep did not expire the alert"
        await asyncio.sleep(0.02)

    for status, expected in [
        ("firing", [firing]),
        ("resolved", [resolved]),
        ("expired", [expiring]),
        ("all", sorted([firing, resolved, expiring])),
    ]:
        body = await api.ok(f"/api/v1/alerts?status={status}")
        assert sorted(a["fingerprint"] for a in body["alerts"]) == expected, status


async def test_alert_fields(three_incidents: Api) -> None:
    labels = {"alertname": "Cpu", "service": "api", "instance": "i-2"}
    alert = await three_incidents.ok(f"/api/v1/alerts/{fingerprint(labels)}")
    assert alert["fingerprint"] == fingerprint(labels)
    assert alert["labels"] == labels
    assert alert["status"] == "firing"
    assert alert["starts_at"] == "2026-11-23T17:59:40.000Z"
    assert alert["ends_at"] is None
    assert alert["sources"] == ["prometheus"]
    assert alert["first_seen"] == alert["last_seen"] == "2026-11-23T18:00:10.000Z"
    assert alert["times_seen"] == 1
    assert alert["incident_id"] == 2


@pytest.mark.parametrize("raw", ["0000000000000000", "nothing", "%2E%2E"])
async def test_unknown_alert_is_a_json_404(three_incidents: Api, raw: str) -> None:
    status, body = await three_incidents.get(f"/api/v1/alerts/{raw}")
    assert status == 404
    assert (body["status"], body["reason"]) == ("error", "not_found")


# -- query validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
@pytest.mark.parametrize("status", ["shut", "OPEN", "", "firing,resolved"])
async def test_invalid_status_is_400_invalid_query(api: Api, path: str, status: str) -> None:
    if path.endswith("alerts") and status == "":
        status = "none"
    code, body = await api.get(f"{path}?status={status}")
    assert code == 400
    assert (body["status"], body["reason"]) == ("error", "invalid_query")
    assert "status must be one of" in body["error"]


async def test_incident_status_is_not_an_alert_status(api: Api) -> None:
    assert (await api.get("/api/v1/incidents?status=firing"))[0] == 400
    assert (await api.get("/api/v1/alerts?status=open"))[0] == 400


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
@pytest.mark.parametrize(
    "query", ["limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=1.5", "offset=-1", "offset=x", "limit="]
)
async def test_invalid_limit_or_offset_is_400_invalid_query(api: Api, path: str, query: str) -> None:
    code, body = await api.get(f"{path}?{query}")
    assert code == 400
    assert body["reason"] == "invalid_query"


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
async def test_offset_beyond_any_integer_is_not_a_server_error(api: Api, path: str) -> None:
    code, body = await api.get(f"{path}?offset=99999999999999999999999")
    assert code < 500, body


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/alerts"])
async def test_limit_bounds_are_accepted(api: Api, path: str) -> None:
    assert (await api.get(f"{path}?limit=1"))[0] == 200
    assert (await api.get(f"{path}?limit=1000&offset=0"))[0] == 200


async def test_incidents_page_by_limit_and_offset(three_incidents: Api) -> None:
    pages = [
        [
            i["id"]
            for i in (await three_incidents.ok(f"/api/v1/incidents?status=all&limit=2&offset={offset}"))["incidents"]
        ]
        for offset in (0, 2, 4)
    ]
    assert pages == [[3, 2], [1], []]


async def test_alerts_page_by_limit_and_offset(three_incidents: Api) -> None:
    everything = [a["fingerprint"] for a in (await three_incidents.ok("/api/v1/alerts"))["alerts"]]
    paged = []
    for offset in range(0, 5):
        paged += [
            a["fingerprint"] for a in (await three_incidents.ok(f"/api/v1/alerts?limit=1&offset={offset}"))["alerts"]
        ]
    assert paged == everything
    assert len(set(paged)) == 4


async def test_unknown_path_is_a_json_404(api: Api) -> None:
    code, body = await api.get("/api/v1/nothing-here")
    assert code == 404
    assert body["status"] == "error"


async def test_wrong_method_is_a_json_405(api: Api) -> None:
    async with api.client.post("/api/v1/incidents", data=b"{}") as resp:
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"].split(",")
        assert (await resp.json())["status"] == "error"
