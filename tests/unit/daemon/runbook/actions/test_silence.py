"""The silence action: matchers rendered once and sent as data, ends after duration, cleanup expires it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.runbook.actions import ACTIONS
from daemon.runbook.actions.base import ActionUnavailable
from daemon.runbook.actions.silence import SilenceAction, SilenceSpec
from daemon.runbook.render import RenderError
from tests.unit.integrations.steps import START, context, render
from tests.unit.integrations.upstream import Upstream, serving

SILENCE_ID = "9b1d2c7e-0c55-4d7e-9a57-0e5f6f1e2a3b"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as server:
        yield server


def spec(**fields: Any) -> SilenceSpec:
    return SilenceSpec.model_validate(
        {
            "matchers": [
                {"name": "instance", "value": "{{ params.instance }}"},
                {"name": "alertname", "value": "DB.*", "is_regex": True},
            ],
            "duration": "15m",
            "comment": "restarting {{ params.instance }}",
            **fields,
        }
    )


def test_registered_and_needs_alertmanager() -> None:
    assert ACTIONS["silence"] is SilenceSpec
    assert SilenceSpec.requires == ("alertmanager",)


def test_plan_shows_rendered_matchers() -> None:
    action = spec().build(render({"instance": "db-1:9100"}))
    assert action.plan() == {
        "matchers": ["instance='db-1:9100'", "alertname=~'DB.*'"],
        "duration": "15m",
        "comment": "restarting db-1:9100",
    }


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"matchers": [{"name": "{{ params.instance }}", "value": "x"}]}, "not a label name"),
        ({"matchers": [{"name": "job", "value": "{{ params.empty }}"}]}, "must not match the empty string"),
        ({"comment": "{{ params.empty }}"}, "comment renders to nothing"),
    ],
)
def test_build_refuses_what_alertmanager_would(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RenderError, match=fragment):
        spec(**fields).build(render({"instance": "db-1:9100", "empty": ""}))


@pytest.mark.parametrize("fields", [{"matchers": []}, {"duration": "0s"}, {"matchers": [{"name": "a"}]}])
def test_spec_refuses_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(**fields)


async def test_creates_a_silence_for_duration_and_cleanup_expires_it(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/silences", body={"silenceID": SILENCE_ID})
    upstream.answer("DELETE", f"/am/api/v2/silence/{SILENCE_ID}", text="")
    action: SilenceAction = spec().build(render({"instance": "db-1:9100"}))
    ctx = context(upstream)
    outcome = await action.execute(ctx)
    assert outcome.ok, outcome.summary
    assert outcome.data == {"silence_id": SILENCE_ID, "ends_at": START + 900}
    assert outcome.summary == (
        f"silence {SILENCE_ID} on instance='db-1:9100', alertname=~'DB.*' until 2027-01-15T08:15:00.000Z"
    )
    body = upstream.requests[0].json()
    assert body == {
        "matchers": [
            {"name": "instance", "value": "db-1:9100", "isRegex": False, "isEqual": True},
            {"name": "alertname", "value": "DB.*", "isRegex": True, "isEqual": True},
        ],
        "startsAt": "2027-01-15T08:00:00.000Z",
        "endsAt": "2027-01-15T08:15:00.000Z",
        "createdBy": "itsmd run 7 (restart-db/check)",
        "comment": "restarting db-1:9100 [itsmd run 7 step check]",
    }
    await action.cleanup(ctx, outcome.data)
    assert [(r.method, r.path) for r in upstream.requests][-1] == ("DELETE", f"/am/api/v2/silence/{SILENCE_ID}")


async def test_a_label_value_that_looks_like_a_template_stays_text(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/silences", body={"silenceID": SILENCE_ID})
    await spec().build(render({"instance": "{{ 7*7 }}"})).execute(context(upstream))
    assert upstream.requests[0].json()["matchers"][0]["value"] == "{{ 7*7 }}"


async def test_refusal_is_an_outcome(upstream: Upstream) -> None:
    upstream.answer("POST", "/am/api/v2/silences", 400, "silence invalid: bad regex")
    outcome = await spec().build(render({"instance": "x"})).execute(context(upstream))
    assert not outcome.ok
    assert "not retryable" in outcome.summary
    assert "silence invalid: bad regex" in outcome.summary
    assert "silence_id" not in outcome.data


async def test_cleanup_without_a_silence_does_nothing(upstream: Upstream) -> None:
    await spec().build(render({"instance": "x"})).cleanup(context(upstream), {"retryable": False})
    assert upstream.requests == []


async def test_cleanup_without_alertmanager_config_says_the_silence_lapses(upstream: Upstream) -> None:
    action = spec().build(render({"instance": "x"}))
    with pytest.raises(ActionUnavailable, match="lapses on its own"):
        await action.cleanup(context(upstream, alertmanager=False), {"silence_id": SILENCE_ID})
