"""Silences in the real Alertmanager 0.25: the client, then the runbook action, whose cleanup expires them.

The module starts its own Alertmanager (nothing else of the stack is needed), so the silences made here
never meet the alerts of the session-wide stack.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from daemon.clock import SystemClock
from daemon.runbook.actions.base import StepContext
from daemon.runbook.actions.silence import SilenceSpec
from daemon.runbook.render import TemplateRenderer
from integrations.alertmanager.client import AlertmanagerClient, AlertmanagerError, SilenceNotFound
from integrations.alertmanager.silences import SilenceMatcher

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
    assert silence["comment"] == "restarting db-1:9100"
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
