"""AlertmanagerClient against a real local HTTP server answering as Alertmanager 0.25's v2 API does."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from integrations.alertmanager.client import AlertmanagerClient, AlertmanagerError, SilenceNotFound
from integrations.alertmanager.silences import SilenceMatcher
from tests.unit.integrations.upstream import Upstream

SILENCE_ID = "3f1b5a0e-6f2d-4a53-9b8e-2f7d2a1c9e11"
START = 1_700_000_000.0


def client(upstream: Upstream, **kwargs: Any) -> AlertmanagerClient:
    return AlertmanagerClient(upstream.session, upstream.url("/am"), **kwargs)


async def create(am: AlertmanagerClient, *matchers: SilenceMatcher) -> str:
    return await am.create_silence(
        matchers or (SilenceMatcher("instance", "db-1:9100"),),
        starts_at=START,
        ends_at=START + 900,
        created_by="itsmd run 7",
        comment="restart-db",
    )


async def test_create_posts_the_v2_body_and_returns_the_id(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/silences", body={"silenceID": SILENCE_ID})
    am = client(upstream, headers={"Authorization": "Bearer t0k"})
    silence_id = await create(am, SilenceMatcher("instance", "db-1:9100"), SilenceMatcher("job", "no.*", True, False))
    assert silence_id == SILENCE_ID
    (seen,) = upstream.requests
    assert seen.headers["Authorization"] == "Bearer t0k"
    assert seen.json() == {
        "matchers": [
            {"name": "instance", "value": "db-1:9100", "isRegex": False, "isEqual": True},
            {"name": "job", "value": "no.*", "isRegex": True, "isEqual": False},
        ],
        "startsAt": "2023-11-14T22:13:20.000Z",
        "endsAt": "2023-11-14T22:28:20.000Z",
        "createdBy": "itsmd run 7",
        "comment": "restart-db",
    }


async def test_create_refused_carries_alertmanagers_text(upstream: Upstream) -> None:
    # Alertmanager 0.25 answers a bad silence with 400 and a JSON string body.
    upstream.answer("POST", "/am/api/v2/silences", 400, "silence invalid: invalid label matcher 0: bad regex")
    with pytest.raises(AlertmanagerError) as caught:
        await create(client(upstream), SilenceMatcher("job", "(", is_regex=True))
    assert not caught.value.retryable
    assert "HTTP 400: silence invalid: invalid label matcher 0: bad regex" in str(caught.value)


async def test_create_on_server_error_is_retryable(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/silences", 503, text="upstream connect error")
    with pytest.raises(AlertmanagerError) as caught:
        await create(client(upstream))
    assert caught.value.retryable


async def test_create_timeout_is_retryable(upstream: Upstream) -> None:
    upstream.hang("POST", "/am/api/v2/silences")
    with pytest.raises(AlertmanagerError) as caught:
        await create(client(upstream, timeout=0.1))
    assert caught.value.retryable


@pytest.mark.parametrize("answer", ["not json", '{"id": "x"}', '""'])
async def test_create_answer_without_id_is_an_error(upstream: Upstream, answer: str) -> None:
    upstream.answer("POST", "/am/api/v2/silences", text=answer)
    with pytest.raises(AlertmanagerError) as caught:
        await create(client(upstream))
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("matchers", "fragment"),
    [
        ((), "at least one matcher"),
        ((SilenceMatcher("job", ""),), "must not match the empty string"),
    ],
)
async def test_silences_that_would_match_everything_are_not_sent(
    upstream: Upstream, matchers: tuple[SilenceMatcher, ...], fragment: str
) -> None:
    am = client(upstream)
    with pytest.raises(AlertmanagerError, match=fragment):
        await am.create_silence(matchers, starts_at=START, ends_at=START + 1, created_by="me", comment="c")
    assert upstream.requests == []


async def test_end_before_start_is_not_sent(upstream: Upstream) -> None:
    with pytest.raises(AlertmanagerError, match="end after it starts"):
        await client(upstream).create_silence(
            [SilenceMatcher("a", "b")], starts_at=START, ends_at=START, created_by="me", comment="c"
        )


def test_label_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not a label name"):
        SilenceMatcher("1bad", "x")


async def test_get_returns_the_silence_and_404_is_typed(upstream: Upstream) -> None:
    silence = {"id": SILENCE_ID, "status": {"state": "active"}}
    upstream.answer("GET", f"/am/api/v2/silence/{SILENCE_ID}", body=silence)
    am = client(upstream)
    assert await am.get_silence(SILENCE_ID) == silence
    with pytest.raises(SilenceNotFound):
        await am.get_silence("0000-unknown")


async def test_expire_deletes(upstream: Upstream) -> None:
    upstream.answer("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", text="")
    await client(upstream).expire_silence(SILENCE_ID)
    assert [(r.method, r.path) for r in upstream.requests] == [("DELETE", f"/am/api/v2/silence/{SILENCE_ID}")]


async def test_expire_of_unknown_silence_is_fine(upstream: Upstream) -> None:
    upstream.answer("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", 404, text="")
    await client(upstream).expire_silence(SILENCE_ID)


async def test_expire_of_expired_silence_is_fine(upstream: Upstream) -> None:
    # Alertmanager before 0.24 answers 500 "silence ... already expired" to a second DELETE.
    upstream.answer("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", 500, f"silence {SILENCE_ID} already expired")
    upstream.answer("GET", f"/am/api/v2/silence/{SILENCE_ID}", body={"id": SILENCE_ID, "status": {"state": "expired"}})
    await client(upstream).expire_silence(SILENCE_ID)


async def test_expire_that_fails_while_still_active_raises(upstream: Upstream) -> None:
    upstream.answer("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", 500, "disk full")
    upstream.answer("GET", f"/am/api/v2/silence/{SILENCE_ID}", body={"id": SILENCE_ID, "status": {"state": "active"}})
    with pytest.raises(AlertmanagerError) as caught:
        await client(upstream).expire_silence(SILENCE_ID)
    assert caught.value.retryable
    assert "HTTP 500: disk full" in str(caught.value)


async def test_expire_when_alertmanager_is_unreachable_raises_the_delete_error(upstream: Upstream) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="bad gateway")

    upstream.handle("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", broken)
    upstream.handle("GET", f"/am/api/v2/silence/{SILENCE_ID}", broken)
    with pytest.raises(AlertmanagerError) as caught:
        await client(upstream).expire_silence(SILENCE_ID)
    assert caught.value.retryable
    assert "DELETE" in str(caught.value)


@pytest.mark.parametrize("bad", ["../silences", "", "a/b", "x" * 200])
async def test_ids_that_could_leave_the_path_are_refused(upstream: Upstream, bad: str) -> None:
    with pytest.raises(AlertmanagerError, match="not a silence id"):
        await client(upstream).expire_silence(bad)
    assert upstream.requests == []


async def test_post_alerts_sends_the_array_with_the_token(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/alerts", text="")
    alerts = [{"labels": {"alertname": "ItsmdIncidentOpen"}, "endsAt": "2026-11-23T18:20:00.000Z"}]
    await client(upstream, headers={"Authorization": "Bearer t0k"}).post_alerts(alerts)
    (seen,) = upstream.requests
    assert seen.headers["Authorization"] == "Bearer t0k"
    assert seen.json() == alerts


async def test_post_alerts_refused_raises_with_the_reason(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/alerts", 400, {"code": 400, "message": "start time must be before end time"})
    with pytest.raises(AlertmanagerError, match="start time must be before end time") as caught:
        await client(upstream).post_alerts([{"labels": {"a": "b"}}])
    assert not caught.value.retryable
