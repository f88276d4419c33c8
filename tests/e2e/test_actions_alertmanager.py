"""Silences in the real Alertmanager 0.25: the client, then the runbook action, whose cleanup expires them.

The module starts its own Alertmanager (nothing else of the stack is needed), so the silences made here
never meet the alerts of the session-wide stack.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daemon.clock import ManualClock, SystemClock
from daemon.runbook.actions.base import StepContext
from daemon.runbook.actions.silence import SilenceSpec
from daemon.runbook.model import RunMode, RunStatus
from daemon.runbook.render import TemplateRenderer
from integrations.alertmanager.client import AlertmanagerClient, AlertmanagerError, SilenceNotFound
from integrations.alertmanager.silences import SilenceMatcher
from tests.unit.daemon.runbook.harness import Harness, write_runbook

from .client import get_json, request, wait_until
from .stack import START_TIMEOUT, Binaries, MissingBinary, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alertmanager_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager on a free port, for this module only."""
    try:
        binaries = Binaries.find()
    except MissingBinary as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    stack = Stack(Path(tmp_path_factory.mktemp("am-silences")), binaries)
    stack.write_configs()
    stack.check_configs()
    stack.alertmanager.start()
    try:

        def ready() -> bool:
            stack.alertmanager.check_alive()
            return request("GET", f"{stack.am_url}/-/ready", timeout=2.0).status == 200

        wait_until(ready, timeout=START_TIMEOUT, what="Alertmanager to be ready", describe=stack.alertmanager.tail)
        yield stack.am_url
    finally:
        stack.alertmanager.stop()


@pytest.fixture
async def am(alertmanager_url: str) -> AsyncIterator[AlertmanagerClient]:
    async with aiohttp.ClientSession() as session:
        yield AlertmanagerClient(session, alertmanager_url, timeout=5.0)


def silences_in_api(url: str) -> dict[str, str]:
    """id -> state, as Alertmanager lists them (GET /api/v2/silences)."""
    return {s["id"]: s["status"]["state"] for s in get_json(f"{url}/api/v2/silences")}


async def test_silence_created_read_and_expired_twice(am: AlertmanagerClient, alertmanager_url: str) -> None:
    now = time.time()
    matchers = [SilenceMatcher("instance", "db-1:9100"), SilenceMatcher("alertname", "Target.*", is_regex=True)]
    silence_id = await am.create_silence(
        matchers, starts_at=now, ends_at=now + 600, created_by="itsmd e2e", comment="client test"
    )
    assert silences_in_api(alertmanager_url)[silence_id] == "active"
    silence = await am.get_silence(silence_id)
    assert silence["createdBy"] == "itsmd e2e"
    assert {(m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]} == {
        ("instance", "db-1:9100", False),
        ("alertname", "Target.*", True),
    }

    await am.expire_silence(silence_id)
    assert silences_in_api(alertmanager_url)[silence_id] == "expired"
    await am.expire_silence(silence_id)  # idempotent
    assert (await am.get_silence(silence_id))["status"]["state"] == "expired"


async def test_real_alertmanager_refusals_are_not_retryable(am: AlertmanagerClient) -> None:
    now = time.time()
    with pytest.raises(AlertmanagerError) as caught:
        await am.create_silence(
            [SilenceMatcher("job", "(", is_regex=True)], starts_at=now, ends_at=now + 60, created_by="e2e", comment="c"
        )
    assert not caught.value.retryable
    assert caught.value.status == 400
    assert "HTTP 400:" in str(caught.value)


async def test_unknown_silence(am: AlertmanagerClient) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(SilenceNotFound):
        await am.get_silence(unknown)
    await am.expire_silence(unknown)  # 0.25 answers 500 "silence not found"; gone is as good as expired


async def test_silence_action_creates_and_cleanup_expires(am: AlertmanagerClient, alertmanager_url: str) -> None:
    clock = SystemClock()
    ctx = StepContext(
        run_id=42,
        runbook="restart-db",
        step="silence",
        clock=clock,
        http=am.session,
        prometheus=None,
        alertmanager=am,
        deadline=clock.now() + 30,
    )
    spec = SilenceSpec.model_validate(
        {
            "matchers": [
                {"name": "instance", "value": "{{ params.instance }}"},
                {"name": "severity", "value": "info", "is_equal": False},
            ],
            "duration": "10m",
            "comment": "restarting {{ params.instance }}",
        }
    )
    action = spec.build(TemplateRenderer({"params": {"instance": "db-1:9100"}, "incident": None, "run": {"id": 42}}))
    posted = request("POST", f"{alertmanager_url}/api/v2/alerts", [{"labels": {**ALERT, "severity": "critical"}}])
    assert posted.status == 200, posted.text()
    outcome = await action.execute(ctx)
    assert outcome.ok, outcome.summary
    silence_id = outcome.data["silence_id"]
    assert alert_silenced_by(alertmanager_url) == [silence_id]

    listed = {s["id"]: s for s in get_json(f"{alertmanager_url}/api/v2/silences")}
    silence = listed[silence_id]
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "itsmd run 42 (restart-db/silence)"
    assert silence["comment"] == "restarting db-1:9100 [itsmd run 42 step silence]"
    assert {(m["name"], m["value"], m["isEqual"]) for m in silence["matchers"]} == {
        ("instance", "db-1:9100", True),
        ("severity", "info", False),
    }

    await action.cleanup(ctx, dict(outcome.data))  # as the engine does, from the journaled data
    assert silences_in_api(alertmanager_url)[silence_id] == "expired"
    assert alert_silenced_by(alertmanager_url) == []


ALERT = {"alertname": "DiskFull", "instance": "db-1:9100"}


def alert_silenced_by(url: str) -> list[str]:
    """The silences muting the test alert right now, as Alertmanager reports them."""
    (alert,) = [a for a in get_json(f"{url}/api/v2/alerts") if a["labels"]["alertname"] == ALERT["alertname"]]
    silenced: list[str] = alert["status"]["silencedBy"]
    return silenced


# ---- a silence whose id never reached the journal ---------------------------------------------------------


class SlowAnswers:
    """A real HTTP proxy in front of Alertmanager that passes every request on at once but holds back the
    answer to POST /api/v2/silences until released: the silence exists, its creator never learns the id."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.created = asyncio.Event()
        self.release = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> SlowAnswers:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers
        ) as resp:
            status, answer = resp.status, await resp.read()
        if request.method == "POST" and request.path == "/api/v2/silences":
            self.created.set()
            await self.release.wait()
        return web.Response(status=status, body=answer, content_type="application/json")


def _muting_runbook(folder: Path, instance: str, timeout: str) -> Path:
    return write_runbook(
        folder,
        f"""
        name: muted
        steps:
          - name: mute
            timeout: {timeout}
            silence:
              matchers: [{{name: instance, value: '{instance}'}}]
              duration: 10m
              comment: 'restarting {instance}'
        """,
    )


def ours(url: str, instance: str) -> list[dict[str, Any]]:
    return [
        s
        for s in get_json(f"{url}/api/v2/silences")
        if any(m["name"] == "instance" and m["value"] == instance for m in s["matchers"])
    ]


async def test_a_silence_step_that_timed_out_expires_the_silence_it_made(alertmanager_url: str, tmp_path: Path) -> None:
    instance = "db-7:9100"
    h = Harness(tmp_path / "store", ManualClock(start=time.time()))
    async with SlowAnswers(alertmanager_url) as proxy, aiohttp.ClientSession() as session:
        engine = await h.start(
            [_muting_runbook(tmp_path / "rb", instance, "1s")],
            alertmanager=AlertmanagerClient(session, proxy.url, timeout=30.0),
        )
        run = engine.start("muted", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
        await h.until(run, within=30.0)
        await h.stop()
    (silence,) = ours(alertmanager_url, instance)
    assert silence["comment"] == f"restarting {instance} [itsmd run {run.id} step mute]"
    assert silence["status"]["state"] == "expired"  # not left muting alerts for its 10 minutes
    (step,) = run.steps
    assert step.summary == f"timed out after 1s; expired silence {silence['id']} it had made"


async def test_a_silence_in_flight_at_a_crash_is_expired_at_recovery(alertmanager_url: str, tmp_path: Path) -> None:
    instance = "db-8:9100"
    rb = _muting_runbook(tmp_path / "rb", instance, "1h")
    clock = ManualClock(start=time.time())
    h = Harness(tmp_path / "store", clock)
    async with SlowAnswers(alertmanager_url) as proxy, aiohttp.ClientSession() as session:
        engine = await h.start([rb], alertmanager=AlertmanagerClient(session, proxy.url, timeout=30.0))
        run = engine.start("muted", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
        await asyncio.wait_for(proxy.created.wait(), 30.0)
        (silence,) = ours(alertmanager_url, instance)
        assert silence["status"]["state"] == "active"
        await h.crash()  # the journal says "mute" is running and knows no silence id

        h = Harness(tmp_path / "store", clock)
        engine = await h.start([rb], alertmanager=AlertmanagerClient(session, proxy.url, timeout=30.0))
        again = engine.get(run.id)
        assert again is not None and again.status is RunStatus.HELD  # not idempotent: a human looks
        await h.stop()
    (silence,) = ours(alertmanager_url, instance)
    assert silence["status"]["state"] == "expired"
    assert again.steps[-1].summary == f"interrupted by a restart; expired silence {silence['id']} it had made"
