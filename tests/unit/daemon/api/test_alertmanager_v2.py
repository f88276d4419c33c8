"""Alertmanager's v2 read API on the real app: shapes checked against Alertmanager 0.25's own schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon.app import create_app
from daemon.clock import ManualClock
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.api.amschema import problems
from tests.unit.daemon.configfiles import load_test_config, write_rules

START = datetime(2026, 11, 23, 18, 0, 0, 250000, tzinfo=UTC).timestamp()
READ_TOKEN = "am-read-t0ken-5a5a5a"  # noqa: S105
WRITE_TOKEN = "am-write-t0ken-6b6b6b"  # noqa: S105
UPSTREAM_TOKEN = "upstream-am-t0ken-7c7c7c"  # noqa: S105
UPSTREAM_PASSWORD = "upstream-pa55-8d8d8d"  # noqa: S105
SECRETS = (READ_TOKEN, WRITE_TOKEN, UPSTREAM_TOKEN, UPSTREAM_PASSWORD)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class Daemon:
    def __init__(self, client: TestClient[Any, Any], clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    async def get(self, path: str, expect: int = 200, headers: dict[str, str] | None = None) -> Any:
        async with self.client.get(path, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == expect, text
            assert resp.content_type == "application/json", text
            return json.loads(text)

    async def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> int:
        async with self.client.post(path, data=json.dumps(body), headers=headers) as resp:
            await resp.read()
            return resp.status

    async def fire(self, labels: dict[str, str], *, ends_in: float = 600.0, **extra: str) -> str:
        """Prometheus' way: POST /api/v2/alerts with endsAt ahead; returns the fingerprint."""
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} is bad"},
            "startsAt": iso(self.clock.now() - 30.123456),
            "endsAt": iso(self.clock.now() + ends_in),
            **extra,
        }
        assert await self.post("/api/v2/alerts", [alert], {"User-Agent": "Prometheus/2.42.0"}) == 200
        return fingerprint(labels)

    async def resolve(self, labels: dict[str, str], starts_at: float) -> None:
        alert = {"labels": labels, "startsAt": iso(starts_at), "endsAt": iso(self.clock.now())}
        assert await self.post("/api/v2/alerts", [alert]) == 200

    async def webhook(self, labels: dict[str, str]) -> str:
        fp = fingerprint(labels)
        alert = {
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": iso(self.clock.now() - 5),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
            "fingerprint": fp,
        }
        body = {"version": "4", "status": "firing", "receiver": "itsmd", "alerts": [alert]}
        assert await self.post("/webhook/alertmanager", body) == 200
        return fp


@asynccontextmanager
async def serving(tmp_path: Path, config: str = "") -> AsyncIterator[Daemon]:
    text = f"rules_dir: rules\nalerts:\n  sweep_interval: 1h\n{config}"
    (tmp_path / "itsmd.yaml").write_text(text, encoding="utf-8")
    write_rules(tmp_path / "rules")
    clock = ManualClock(start=START)
    app = create_app(load_test_config(tmp_path / "itsmd.yaml", data_dir=tmp_path / "data"), clock=clock)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Daemon(client, clock)
    finally:
        await client.close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with serving(tmp_path) as d:
        yield d


API = {"alertname": "HighLatency", "service": "api", "instance": "i-1"}
API_2 = {"alertname": "HighLatency", "service": "api", "instance": "i-2"}
DB = {"alertname": "DiskFull", "service": "db", "instance": "db-1", "severity": "critical"}


def names(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["labels"]["instance"] for a in alerts]


# -- GET /api/v2/alerts ----------------------------------------------------------------------------------------


async def test_firing_alerts_in_alertmanagers_shape(daemon: Daemon) -> None:
    fp = await daemon.fire(API, generatorURL="http://prometheus:9090/graph?g0.expr=latency")
    db = await daemon.webhook(DB)
    alerts = await daemon.get("/api/v2/alerts")
    assert problems("gettableAlerts", alerts) == []
    assert [a["fingerprint"] for a in alerts] == sorted([fp, db])  # Alertmanager sorts by fingerprint
    api = next(a for a in alerts if a["fingerprint"] == fp)
    assert api["labels"] == API
    assert api["startsAt"] == iso_ms(START - 30.123456)
    assert api["endsAt"] == iso_ms(START + 600)  # what Prometheus sent, as Alertmanager shows it
    assert api["updatedAt"] == iso_ms(START)
    assert api["generatorURL"] == "http://prometheus:9090/graph?g0.expr=latency"
    assert api["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": []}
    incident = (await daemon.get("/api/v1/incidents"))["incidents"]
    api_incident = next(i for i in incident if i["service"] == "api")
    assert api["annotations"] == {
        "summary": "HighLatency is bad",
        "itsmd_incident": str(api_incident["id"]),
        "itsmd_priority": api_incident["priority"],
    }
    assert [r["name"] for r in api["receivers"]] == [
        "itsmd",
        "itsmd/service/api",
        f"itsmd/incident/{api_incident['id']}",
    ]


def iso_ms(seconds: float) -> str:
    whole = int(seconds)
    millis = round((seconds - whole) * 1e6) // 1000
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


async def test_resolved_and_past_their_end_drop_out(daemon: Daemon) -> None:
    await daemon.fire(API)
    await daemon.fire(API_2, ends_in=60)
    await daemon.fire(DB)
    await daemon.resolve(API, START - 30.123456)
    assert set(names(await daemon.get("/api/v2/alerts"))) == {"i-2", "db-1"}
    daemon.clock.advance(61)  # API_2's endsAt passed; the sweep has not run yet, Alertmanager would not list it
    assert names(await daemon.get("/api/v2/alerts")) == ["db-1"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('filter=alertname="HighLatency"', {"i-1", "i-2"}),
        ("filter=alertname=HighLatency&filter=instance!=i-1", {"i-2"}),
        ('filter=service=~"a.*"', {"i-1", "i-2"}),
        ('filter=service=~"a"', set()),  # anchored, as in Alertmanager
        ('filter=severity=""', {"i-1", "i-2"}),  # an absent label is the empty string
        ('filter=severity!=""', {"db-1"}),
        ("receiver=itsmd/service/db", {"db-1"}),
        ("receiver=itsmd", {"i-1", "i-2", "db-1"}),
        ("receiver=service", set()),  # the whole name must match
        ("active=false", set()),
        ("active=true&silenced=false&inhibited=false&unprocessed=false", {"i-1", "i-2", "db-1"}),
        ("silenced=false", {"i-1", "i-2", "db-1"}),
    ],
)
async def test_filters_mean_what_they_mean_in_alertmanager(daemon: Daemon, query: str, expected: set[str]) -> None:
    for labels in (API, API_2, DB):
        await daemon.fire(labels)
    alerts = await daemon.get(f"/api/v2/alerts?{quote_values(query)}")
    assert set(names(alerts)) == expected
    assert problems("gettableAlerts", alerts) == []


def quote_values(query: str) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, _, v in (p.partition("=") for p in query.split("&")))


async def test_receiver_of_an_incident_selects_its_alerts(daemon: Daemon) -> None:
    for labels in (API, API_2, DB):
        await daemon.fire(labels)
    alerts = await daemon.get("/api/v2/alerts?filter=instance%3Ddb-1")
    incident = alerts[0]["annotations"]["itsmd_incident"]
    chosen = await daemon.get(f"/api/v2/alerts?receiver=itsmd/incident/{incident}")
    assert names(chosen) == ["db-1"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("active=maybe", "invalid_query"),
        ("filter=alertname", "invalid_filter"),
        ("filter=alertname%3D~%22(%22", "invalid_filter"),
        ("receiver=(", "invalid_query"),
    ],
)
async def test_bad_queries_are_400_with_a_reason(daemon: Daemon, query: str, reason: str) -> None:
    body = await daemon.get(f"/api/v2/alerts?{query}", expect=400)
    assert body["reason"] == reason


# -- GET /api/v2/alerts/groups ---------------------------------------------------------------------------------


async def test_one_group_per_incident(daemon: Daemon) -> None:
    for labels in (API, API_2, DB):
        await daemon.fire(labels)
    groups = await daemon.get("/api/v2/alerts/groups")
    assert problems("alertGroups", groups) == []
    incidents = {i["service"]: i["id"] for i in (await daemon.get("/api/v1/incidents"))["incidents"]}
    assert [g["receiver"]["name"] for g in groups] == [
        f"itsmd/incident/{incidents[s]}" for s in sorted(incidents, key=lambda s: incidents[s])
    ]
    api = next(g for g in groups if g["labels"].get("service") == "api")
    assert api["labels"] == {"alertname": "HighLatency", "service": "api"}
    assert sorted(names(api["alerts"])) == ["i-1", "i-2"]
    filtered = await daemon.get("/api/v2/alerts/groups?filter=instance%3Di-2")
    assert [names(g["alerts"]) for g in filtered] == [["i-2"]]  # groups left empty by a filter are left out


# -- GET /api/v2/status and /api/v2/receivers ------------------------------------------------------------------


async def test_status_says_it_is_itsmd_and_shows_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_T_READ", READ_TOKEN)
    monkeypatch.setenv("ITSMD_T_UPSTREAM", UPSTREAM_TOKEN)
    (tmp_path / "write.token").write_text(WRITE_TOKEN)
    config = (
        "auth:\n  api:\n    read_tokens:\n      - token_env: ITSMD_T_READ\n"
        "    write_tokens:\n      - token_file: write.token\n"
        f"alertmanager:\n  url: http://itsmd:{UPSTREAM_PASSWORD}@127.0.0.1:1/am\n  bearer_token: ITSMD_T_UPSTREAM\n"
        "runbooks:\n  secrets:\n    db_password:\n      env: ITSMD_T_READ\n"
    )
    async with serving(tmp_path, config) as d:
        daemon_started = d.clock.now()
        d.clock.advance(100)
        status = await d.get("/api/v2/status", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert problems("alertmanagerStatus", status) == []
    assert status["versionInfo"]["version"].startswith("itsmd-")
    assert status["versionInfo"]["goVersion"].startswith("none (python 3.")
    assert status["cluster"] == {"name": "", "status": "disabled", "peers": []}
    assert status["uptime"] == iso_ms(daemon_started)
    text = status["config"]["original"]
    for secret in SECRETS:
        assert secret not in text
    shown = yaml.safe_load(text)
    assert shown["auth"]["api"]["read_tokens"] == [{"token_env": "ITSMD_T_READ", "token_file": None}]
    assert shown["auth"]["api"]["write_tokens"][0]["token_file"] == "write.token"  # noqa: S105
    assert "bearer_token" not in shown["alertmanager"]
    assert shown["alertmanager"]["url"] == "http://itsmd:xxxxx@127.0.0.1:1/am"
    assert shown["runbooks"]["secrets"] == {"db_password": {"env": "ITSMD_T_READ", "file": None}}


async def test_receivers_are_those_the_alerts_carry(daemon: Daemon) -> None:
    for labels in (API, DB, {"alertname": "Odd", "service": "nowhere"}):
        await daemon.fire(labels)
    receivers = await daemon.get("/api/v2/receivers")
    assert problems("receiver", receivers[0]) == []
    listed = [r["name"] for r in receivers]
    assert len(listed) == len(set(listed))
    assert {"itsmd", "itsmd/service/api", "itsmd/service/db", "itsmd/service/unknown"} <= set(listed)
    for alert in await daemon.get("/api/v2/alerts"):
        assert {r["name"] for r in alert["receivers"]} <= set(listed)


# -- GET /api/v2/silences --------------------------------------------------------------------------------------


async def test_without_an_alertmanager_there_are_no_silences(daemon: Daemon) -> None:
    assert await daemon.get("/api/v2/silences") == []
    assert await daemon.get('/api/v2/silences?filter=alertname%3D"X"') == []
    await daemon.get("/api/v2/silence/5b9c1e0e-1b27-4d6d-8a53-7b2f5a0f9e01", expect=404)
    body = await daemon.get("/api/v2/silences?filter=%3D%3D", expect=400)
    assert body["reason"] == "invalid_filter"


SILENCE_ID = "5b9c1e0e-1b27-4d6d-8a53-7b2f5a0f9e01"
SILENCE = {  # as Alertmanager 0.25 answers GET /api/v2/silences
    "id": SILENCE_ID,
    "status": {"state": "active"},
    "updatedAt": "2026-11-23T17:59:00.000Z",
    "comment": "maintenance",
    "createdBy": "ann",
    "endsAt": "2026-11-23T20:00:00.000Z",
    "matchers": [{"isEqual": True, "isRegex": False, "name": "service", "value": "db"}],
    "startsAt": "2026-11-23T17:59:00.000Z",
}
OTHER = {
    **SILENCE,
    "id": "0e4c2d44-2f5f-4a55-b1a4-3f0b1e0d9c77",
    "matchers": [{"isEqual": True, "isRegex": True, "name": "alertname", "value": "High.*"}],
}


@dataclass
class FakeAlertmanager:
    """A local Alertmanager stand-in that answers its silences, or fails when told to."""

    status: int = 200
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    async def silences(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("Authorization")))
        if self.status != 200:
            return web.Response(status=self.status, text="boom")
        return web.json_response([SILENCE, OTHER])

    async def silence(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, request.headers.get("Authorization")))
        if self.status != 200:
            return web.Response(status=self.status, text="boom")
        if request.match_info["id"] == SILENCE_ID:
            return web.json_response(SILENCE)
        return web.Response(status=404, text="silence not found")


@asynccontextmanager
async def upstream(fake: FakeAlertmanager) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/am/api/v2/silences", fake.silences)
    app.router.add_get("/am/api/v2/silence/{id}", fake.silence)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/am"))
    finally:
        await server.close()


async def test_silences_are_read_through_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_T_UPSTREAM", UPSTREAM_TOKEN)
    fake = FakeAlertmanager()
    async with upstream(fake) as url:
        config = f"alertmanager:\n  url: {url}\n  bearer_token: ITSMD_T_UPSTREAM\n"
        async with serving(tmp_path, config) as d:
            async with d.client.get("/api/v2/silences") as resp:
                assert resp.status == 200
                assert resp.headers["X-Itsmd-Read-Through"] == url
                listed = await resp.json()
            assert listed == [SILENCE, OTHER]
            assert problems("gettableSilences", listed) == []
            assert await d.get('/api/v2/silences?filter=service%3D"db"') == [SILENCE]
            assert await d.get("/api/v2/silences?filter=alertname%3DHighLatency") == []  # the value, not the regex
            one = await d.get(f"/api/v2/silence/{SILENCE_ID}")
            assert one == SILENCE
            assert problems("gettableSilence", one) == []
            await d.get("/api/v2/silence/0e4c2d44-0000-0000-0000-000000000000", expect=404)
            await d.get("/api/v2/silence/not%20an%20id", expect=404)
            fake.status = 500
            body = await d.get("/api/v2/silences", expect=502)
            assert body["reason"] == "alertmanager_error"
            assert "HTTP 500" in body["error"]
            body = await d.get(f"/api/v2/silence/{SILENCE_ID}", expect=502)
            assert body["reason"] == "alertmanager_error"
    assert {auth for _, auth in fake.seen} == {f"Bearer {UPSTREAM_TOKEN}"}
    assert all(UPSTREAM_TOKEN not in json.dumps(b) for b in (listed, body))


async def test_an_unreachable_alertmanager_is_503(tmp_path: Path) -> None:
    fake = FakeAlertmanager()
    async with upstream(fake) as url:
        pass  # closed: nothing listens there any more
    async with (
        serving(tmp_path, f"alertmanager:\n  url: {url}\n  timeout: 2s\n") as d,
        d.client.get("/api/v2/silences") as resp,
    ):
        assert resp.status == 503
        assert "Retry-After" in resp.headers
        assert (await resp.json())["reason"] == "alertmanager_unavailable"


# -- auth ------------------------------------------------------------------------------------------------------


async def test_reads_need_a_read_token_and_posting_stays_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSMD_T_READ", READ_TOKEN)
    monkeypatch.setenv("ITSMD_T_INGEST", UPSTREAM_TOKEN)
    config = (
        "auth:\n  ingest:\n    token_env: ITSMD_T_INGEST\n  api:\n    read_tokens:\n      - token_env: ITSMD_T_READ\n"
    )
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    ingest = {"Authorization": f"Bearer {UPSTREAM_TOKEN}"}
    async with serving(tmp_path, config) as d:
        for path in (
            "/api/v2/alerts",
            "/api/v2/alerts/groups",
            "/api/v2/status",
            "/api/v2/receivers",
            "/api/v2/silences",
        ):
            await d.get(path, expect=401)
            await d.get(path, expect=401, headers=ingest)
            await d.get(path, headers=read)
        await d.get(f"/api/v2/silence/{SILENCE_ID}", expect=401)
        await d.get(f"/api/v2/silence/{SILENCE_ID}", expect=404, headers=read)
        alert = [{"labels": API, "startsAt": iso(START)}]
        assert await d.post("/api/v2/alerts", alert, read) == 401
        assert await d.post("/api/v2/alerts", alert, ingest) == 200


async def test_the_openapi_document_lists_every_read_and_keeps_the_ingest_post(daemon: Daemon) -> None:
    paths = (await daemon.get("/api/v1/openapi.json"))["paths"]
    for path in ("/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/status", "/api/v2/receivers",
                 "/api/v2/silences", "/api/v2/silence/{silenceID}"):  # fmt: skip
        assert "get" in paths[path], path
    assert "requestBody" in paths["/api/v2/alerts"]["post"]
