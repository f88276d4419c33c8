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
