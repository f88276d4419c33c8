"""POST /webhook/alertmanager and POST /api/v2/alerts over HTTP, on the real app and a real SQLite file.

Captured payloads are replayed at the time they were received (the clock is moved there first).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from daemon.api.errors import status_of
from daemon.ingest.handlers import REJECT_REASONS, validation_problem
from integrations.alertmanager.fingerprint import fingerprint
from tests.fuzz_budget import examples

from .conftest import (
    MAX_BODY_BYTES,
    PROMETHEUS_CAPTURES,
    WEBHOOK_CAPTURES,
    Daemon,
    Json,
    capture,
    eventually,
    series,
)

CHECKOUT_FIRING = "am_webhook_firing_grouped_checkout_3_alerts.json"
CHECKOUT_RESOLVED = "am_webhook_resolved_checkout.json"
DISKFULL_FIRING = "am_webhook_firing_grouped_diskfull_5_alerts.json"
DISKFULL_TRUNCATED = "am_webhook_max_alerts_2_truncated_firing.json"
TARGETDOWN_FIRING = "am_webhook_firing_single_targetdown.json"
PROM_FIRING = "prometheus_post_api_v2_alerts_firing.json"
PROM_RESOLVED = "prometheus_post_api_v2_alerts_resolved.json"

WEBHOOK = "/webhook/alertmanager"
V2 = "/api/v2/alerts"


def labels_key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def alertmanager_fingerprints() -> dict[frozenset[tuple[str, str]], str]:
    """Label set -> the fingerprint Alertmanager itself reported for it, in any capture."""
    out: dict[frozenset[tuple[str, str]], str] = {}
    for path in WEBHOOK_CAPTURES:
        for alert in capture(path.name)["alerts"]:
            out[labels_key(alert["labels"])] = alert["fingerprint"]
    api = json.loads((WEBHOOK_CAPTURES[0].parent / "api_am_api_v2_alerts_firing.json").read_text())
    for alert in api["response"]["body"]:
        out[labels_key(alert["labels"])] = alert["fingerprint"]
    return out


def by_fingerprint(alerts: list[Json]) -> dict[str, Json]:
    return {a["fingerprint"]: a for a in alerts}


# -- every capture is accepted -------------------------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOK_CAPTURES, ids=lambda p: p.stem)
async def test_every_captured_webhook_is_accepted_and_stored_under_alertmanagers_fingerprint(
    daemon: Daemon, path: Path
) -> None:
    body = capture(path.name)
    status, answer = await daemon.post_capture(path.name)
    assert (status, answer) == (200, {"status": "success", "accepted": len(body["alerts"])})
    stored = by_fingerprint(await daemon.alerts())
    assert set(stored) == {a["fingerprint"] for a in body["alerts"]}
    for sent in body["alerts"]:
        alert = stored[sent["fingerprint"]]
        assert alert["labels"] == sent["labels"]
        assert alert["annotations"] == sent["annotations"]
        assert alert["status"] == sent["status"]
        assert alert["sources"] == ["alertmanager"]
        assert alert["generator_url"] == sent["generatorURL"]


@pytest.mark.parametrize("path", PROMETHEUS_CAPTURES, ids=lambda p: p.stem)
async def test_every_captured_prometheus_post_is_accepted_under_alertmanagers_fingerprint(
    daemon: Daemon, path: Path
) -> None:
    body = capture(path.name)
    known = alertmanager_fingerprints()
    status, answer = await daemon.post_capture(path.name)
    assert (status, answer) == (200, {"status": "success", "accepted": len(body)})
    stored = by_fingerprint(await daemon.alerts())
    assert len(stored) == len(body)
    for sent in body:
        alert = stored[known[labels_key(sent["labels"])]]
        assert alert["labels"] == sent["labels"]
        assert alert["sources"] == ["prometheus"]


async def test_prometheus_posted_diskfull_alerts_are_the_webhooks_alerts(daemon: Daemon) -> None:
    status, _ = await daemon.post_capture(PROM_FIRING)
    assert status == 200
    for sent in capture(DISKFULL_FIRING)["alerts"]:
        alert = await daemon.alert(sent["fingerprint"])
        assert alert["labels"] == sent["labels"]
        assert alert["status"] == "firing"


async def test_firing_alert_with_go_zero_endsat_is_firing_without_end(daemon: Daemon) -> None:
    sent = capture(TARGETDOWN_FIRING)["alerts"][0]
    assert sent["endsAt"] == "0001-01-01T00:00:00Z"
    assert (await daemon.post_capture(TARGETDOWN_FIRING))[0] == 200
    alert = await daemon.alert(sent["fingerprint"])
    assert alert["status"] == "firing"
    assert alert["ends_at"] is None
    assert alert["starts_at"] == "2026-11-23T18:16:20.044Z"
    assert (await daemon.metrics())[series("itsmd_alerts_firing")] == 1


async def test_truncated_webhook_keeps_the_alerts_it_carries(daemon: Daemon) -> None:
    body = capture(DISKFULL_TRUNCATED)
    assert body["truncatedAlerts"] == 3
    status, answer = await daemon.post_capture(DISKFULL_TRUNCATED)
    assert (status, answer["accepted"]) == (200, 2)
    assert sorted(a["fingerprint"] for a in await daemon.alerts()) == sorted(a["fingerprint"] for a in body["alerts"])


async def test_mixed_statuses_in_one_webhook(daemon: Daemon) -> None:
    firing = capture(CHECKOUT_FIRING)
    resolved = capture(CHECKOUT_RESOLVED)
    # Alertmanager's top-level status is "firing" when any alert in the group fires.
    mixed = {**firing, "alerts": [firing["alerts"][0], resolved["alerts"][0], firing["alerts"][2]]}
    assert mixed["status"] == "firing"
    daemon.at("2026-11-23T18:16:15.056Z")
    status, answer = await daemon.webhook(mixed)
    assert (status, answer["accepted"]) == (200, 3)
    stored = by_fingerprint(await daemon.alerts())
    assert stored["2a29235400977fef"]["status"] == "firing"
    assert stored["331c9e4f619ddc26"]["status"] == "resolved"
    assert stored["331c9e4f619ddc26"]["ends_at"] == "2026-11-23T18:16:15.044Z"
    assert stored["0dc6b1a57e388f85"]["status"] == "firing"
    assert [a["fingerprint"] for a in await daemon.alerts("firing")] == sorted(["2a29235400977fef", "0dc6b1a57e388f85"])


async def test_resent_webhook_is_the_same_alerts_seen_again(daemon: Daemon) -> None:
    assert (await daemon.post_capture(CHECKOUT_FIRING))[0] == 200
    daemon.clock.advance(10)
    status, answer = await daemon.webhook(capture(CHECKOUT_FIRING))
    assert (status, answer["accepted"]) == (200, 3)
    assert len(await daemon.alerts()) == 3
    assert len(await daemon.incidents()) == 1

    async def seen_twice() -> bool:
        # Re-sends change nothing durable: the API shows the last-seen data the alert table holds.
        return {a["times_seen"] for a in await daemon.alerts()} == {2}

    await eventually(seen_twice)


async def test_partial_then_full_resolve_resolves_the_incident(daemon: Daemon) -> None:
    assert (await daemon.post_capture(CHECKOUT_FIRING))[0] == 200
    [incident] = await daemon.incidents("open")
    assert incident["alert_count"] == 3

    # The captured resolve (Alertmanager, phase "partial resolve") ends checkout-2 and checkout-3 only.
    assert (await daemon.post_capture(CHECKOUT_RESOLVED))[0] == 200
    detail = await daemon.incident(incident["id"])
    assert detail["status"] == "open"
    assert {a["fingerprint"]: a["status"] for a in detail["alerts"]} == {
        "2a29235400977fef": "firing",
        "331c9e4f619ddc26": "resolved",
        "0dc6b1a57e388f85": "resolved",
    }

    # checkout-1 resolves too: Prometheus (re-)posts it with an endsAt that is not in the future.
    assert (await daemon.v2(capture(PROM_RESOLVED)))[0] == 200
    detail = await daemon.incident(incident["id"])
    assert detail["status"] == "resolved"
    assert detail["resolved_at"] == "2026-11-23T18:16:15.044Z"  # checkout-1's endsAt, the last alert's end
    assert {a["status"] for a in detail["alerts"]} == {"resolved"}
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds == ["opened"] + ["alert_firing"] * 3 + ["alert_resolved"] * 3 + ["resolved"]
    assert await daemon.incidents("open") == []
    metrics = await daemon.metrics()
    # checkout (medium tier in the test catalogue) with critical alerts: P2
    assert metrics[series("itsmd_incidents_opened_total", service="checkout", priority="P2")] == 1
    assert (
        metrics[series("itsmd_incidents_resolved_total", service="checkout", priority="P2", resolved_by="alerts")] == 1
    )
    assert metrics[series("itsmd_incidents_open", service="checkout", priority="P2")] == 0


async def test_resolve_in_time_order_by_both_paths(daemon: Daemon) -> None:
    """The real order: Prometheus resolved checkout-1 at 18:16:10, Alertmanager the others at 18:16:15."""
    assert (await daemon.post_capture(CHECKOUT_FIRING))[0] == 200
    assert (await daemon.post_capture(PROM_RESOLVED))[0] == 200
    checkout_1 = await daemon.alert("2a29235400977fef")
    assert checkout_1["status"] == "resolved"
    assert checkout_1["ends_at"] == "2026-11-23T18:16:10.044Z"
    assert checkout_1["sources"] == ["alertmanager", "prometheus"]
    assert (await daemon.incidents("open"))[0]["id"] == 1
    assert (await daemon.post_capture(CHECKOUT_RESOLVED))[0] == 200
    assert [i["status"] for i in await daemon.incidents("all")] == ["resolved"]


# -- /api/v2/alerts: status from endsAt ------------------------------------------------------------------


async def test_v2_endsat_in_the_past_is_resolved(daemon: Daemon) -> None:
    daemon.at("2026-11-23T18:20:00Z")
    labels = {"alertname": "Past", "service": "api"}
    sent = [{"labels": labels, "startsAt": "2026-11-23T18:10:00Z", "endsAt": "2026-11-23T18:19:00Z"}]
    assert await daemon.v2(sent) == (200, {"status": "success", "accepted": 1})
    [alert] = await daemon.alerts()
    assert (alert["status"], alert["ends_at"]) == ("resolved", "2026-11-23T18:19:00.000Z")
    assert await daemon.incidents("all") == []


async def test_v2_endsat_now_is_resolved(daemon: Daemon) -> None:
    """Resolved means endsAt is not in the future (Alertmanager's rule)."""
    daemon.at("2026-11-23T18:20:00Z")
    sent = [{"labels": {"alertname": "Now"}, "startsAt": "2026-11-23T18:10:00Z", "endsAt": "2026-11-23T18:20:00Z"}]
    assert (await daemon.v2(sent))[0] == 200
    assert [a["status"] for a in await daemon.alerts()] == ["resolved"]


async def test_v2_endsat_in_the_future_is_firing(daemon: Daemon) -> None:
    daemon.at("2026-11-23T18:20:00Z")
    labels = {"alertname": "Future", "service": "api"}
    sent = [{"labels": labels, "startsAt": "2026-11-23T18:10:00Z", "endsAt": "2026-11-23T18:24:00Z"}]
    assert (await daemon.v2(sent))[0] == 200
    [alert] = await daemon.alerts()
    assert alert["status"] == "firing"
    assert alert["starts_at"] == "2026-11-23T18:10:00.000Z"
    [incident] = await daemon.incidents("open")
    assert incident["service"] == "api"


async def test_v2_without_startsat_and_endsat_is_accepted_as_firing_since_now(daemon: Daemon) -> None:
    daemon.at("2026-11-23T18:20:00Z")
    assert await daemon.v2([{"labels": {"alertname": "Bare"}}]) == (200, {"status": "success", "accepted": 1})
    [alert] = await daemon.alerts()
    assert alert["status"] == "firing"
    assert alert["starts_at"] == "2026-11-23T18:20:00.000Z"
    assert alert["annotations"] == {}
    assert alert["generator_url"] == ""


async def test_v2_empty_array_is_accepted(daemon: Daemon) -> None:
    assert await daemon.v2([]) == (200, {"status": "success", "accepted": 0})
    assert await daemon.alerts() == []


async def test_v2_far_future_times_are_not_a_server_error(daemon: Daemon) -> None:
    """A time the sender can put in JSON must not break the API for everyone afterwards."""
    sent = [{"labels": {"alertname": "Y10K"}, "startsAt": "9999-12-31T23:59:59-14:00"}]
    status, _ = await daemon.v2(sent)
    assert status < 500
    async with daemon.client.get("/api/v1/alerts") as resp:
        assert resp.status == 200, await resp.text()


# -- one alert, two paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("webhook_first", [True, False], ids=["webhook-then-v2", "v2-then-webhook"])
async def test_same_alert_by_webhook_and_v2_is_one_alert(daemon: Daemon, webhook_first: bool) -> None:
    webhook = capture(DISKFULL_FIRING)
    posted = capture(PROM_FIRING)
    daemon.at("2026-11-23T18:15:57.061Z")
    first, second = (daemon.webhook, daemon.v2) if webhook_first else (daemon.v2, daemon.webhook)
    assert (await first(webhook if webhook_first else posted))[0] == 200
    daemon.clock.advance(1)
    assert (await second(posted if webhook_first else webhook))[0] == 200

    alerts = await daemon.alerts()
    assert sorted(a["fingerprint"] for a in alerts) == sorted(a["fingerprint"] for a in webhook["alerts"])
    for alert in alerts:
        assert alert["sources"] == ["alertmanager", "prometheus"]
        assert alert["times_seen"] == 2
        assert alert["status"] == "firing"
    [incident] = await daemon.incidents("all")
    assert incident["alert_count"] == 5
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_alerts_received_total", source="alertmanager")] == 5
    assert metrics[series("itsmd_alerts_received_total", source="prometheus")] == 5
    assert metrics[series("itsmd_alerts_firing")] == 5


async def test_concurrent_requests_are_all_stored_when_acknowledged(daemon: Daemon) -> None:
    async def post(i: int) -> tuple[int, Json]:
        return await daemon.v2([{"labels": {"alertname": "Storm", "instance": f"i-{i}"}}])

    answers = await asyncio.gather(*(post(i) for i in range(40)))
    assert {status for status, _ in answers} == {200}
    assert len(await daemon.alerts("firing")) == 40


# -- bad input -----------------------------------------------------------------------------------------


def _set(body: Json, path: tuple[str | int, ...], value: Any) -> Json:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _delete(body: Json, path: tuple[str | int, ...]) -> Json:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def _checkout() -> Json:
    return capture(CHECKOUT_FIRING)


def _prom() -> Json:
    return capture(PROM_FIRING)


def _diskfull_fingerprint_with_other_labels() -> Json:
    """db-1's fingerprint (already stored) sent with db-2's labels."""
    body = capture(DISKFULL_TRUNCATED)
    return _set(body, ("alerts", 1, "fingerprint"), body["alerts"][0]["fingerprint"])


def _last_with_bad_label_name() -> Json:
    body = _checkout()
    labels = {**body["alerts"][2]["labels"], "bad-name": "x"}
    # A correct fingerprint for those labels, so only the label name is wrong.
    body = _set(body, ("alerts", 2, "labels"), labels)
    return _set(body, ("alerts", 2, "fingerprint"), fingerprint(labels))


BadCase = tuple[str, Callable[[], Json | bytes], int, str, int, str]
"""endpoint, body, HTTP status, reason, alerts the rejected counter counts, text the error must contain."""

BAD_INPUT: dict[str, BadCase] = {
    "webhook-not-json": (WEBHOOK, lambda: b'{"version": "4", "alerts": [', 400, "invalid_json", 1, "JSON"),
    "v2-not-json": (V2, lambda: b"labels=alertname%3DX", 400, "invalid_json", 1, "JSON"),
    "v2-not-utf8": (V2, lambda: b'[{"labels": {"a": "\xff\xfe"}}]', 400, "invalid_json", 1, "JSON"),
    "webhook-label-value-number": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 1, "labels", "instance"), 1),
        400,
        "invalid_payload",
        3,
        "alerts[1].labels.instance",
    ),
    "v2-label-value-number": (
        V2,
        lambda: _set(_prom(), (2, "labels", "instance"), 1),
        400,
        "invalid_payload",
        5,
        "[2].labels.instance",
    ),
    "webhook-startsat-not-a-time": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 0, "startsAt"), "yesterday"),
        400,
        "invalid_payload",
        3,
        "alerts[0].startsAt",
    ),
    "v2-endsat-not-a-time": (
        V2,
        lambda: _set(_prom(), (0, "endsAt"), "soon"),
        400,
        "invalid_payload",
        5,
        "[0].endsAt",
    ),
    "webhook-status-unknown": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 0, "status"), "pending"),
        400,
        "invalid_payload",
        3,
        "alerts[0].status",
    ),
    "webhook-alerts-not-a-list": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts",), {"0": _checkout()["alerts"][0]}),
        400,
        "invalid_payload",
        1,
        "alerts",
    ),
    "v2-not-an-array": (V2, lambda: _prom()[0], 400, "invalid_payload", 1, "body"),
    "webhook-missing-labels": (
        WEBHOOK,
        lambda: _delete(_checkout(), ("alerts", 0, "labels")),
        400,
        "invalid_labels",
        3,
        "alerts[0].labels",
    ),
    "v2-missing-labels": (V2, lambda: _delete(_prom(), (0, "labels")), 400, "invalid_labels", 5, "[0].labels"),
    "webhook-empty-labels": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 0, "labels"), {}),
        400,
        "invalid_labels",
        3,
        "alerts[0].labels",
    ),
    "v2-empty-labels": (V2, lambda: _set(_prom(), (0, "labels"), {}), 400, "invalid_labels", 5, "[0].labels"),
    "v2-invalid-label-name": (
        V2,
        lambda: _set(_prom(), (1, "labels", "bad-name"), "x"),
        400,
        "invalid_labels",
        5,
        "'bad-name'",
    ),
    "v2-label-name-starting-with-digit": (
        V2,
        lambda: [{"labels": {"alertname": "X", "0day": "x"}}],
        400,
        "invalid_labels",
        1,
        "'0day'",
    ),
    "webhook-version-3": (
        WEBHOOK,
        lambda: _set(_checkout(), ("version",), "3"),
        400,
        "unsupported_version",
        3,
        "'3'",
    ),
    "webhook-version-missing": (
        WEBHOOK,
        lambda: _delete(_checkout(), ("version",)),
        400,
        "unsupported_version",
        3,
        "version",
    ),
    "webhook-fingerprint-not-of-labels": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 1, "fingerprint"), "0123456789abcdef"),
        400,
        "fingerprint_mismatch",
        3,
        "alerts[1].fingerprint",
    ),
    "webhook-known-fingerprint-other-labels": (
        WEBHOOK,
        _diskfull_fingerprint_with_other_labels,
        400,
        "fingerprint_mismatch",
        2,
        "alerts[1].fingerprint",
    ),
    "webhook-only-last-alert-bad-label-name": (
        WEBHOOK,
        _last_with_bad_label_name,
        400,
        "invalid_labels",
        3,
        "alerts[2].labels",
    ),
    "webhook-only-last-alert-bad-fingerprint": (
        WEBHOOK,
        lambda: _set(_checkout(), ("alerts", 2, "fingerprint"), "ffffffffffffffff"),
        400,
        "fingerprint_mismatch",
        3,
        "alerts[2].fingerprint",
    ),
    "v2-only-last-alert-empty-labels": (
        V2,
        lambda: _set(_prom(), (4, "labels"), {}),
        400,
        "invalid_labels",
        5,
        "[4].labels",
    ),
    "v2-only-last-alert-bad-label-name": (
        V2,
        lambda: _set(_prom(), (4, "labels", "le.gacy"), "x"),
        400,
        "invalid_labels",
        5,
        "[4].labels",
    ),
}


@pytest.fixture
async def seeded(daemon: Daemon) -> AsyncIterator[Daemon]:
    """A daemon that already holds alerts and an incident, so "nothing changed" has something to compare."""
    assert (await daemon.post_capture(DISKFULL_FIRING))[0] == 200
    assert (await daemon.post_capture(TARGETDOWN_FIRING))[0] == 200
    yield daemon


async def _state(daemon: Daemon) -> tuple[list[Json], list[Json]]:
    return await daemon.alerts(), await daemon.incidents("all")


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_is_refused_whole_and_counted(seeded: Daemon, case: BadCase) -> None:
    endpoint, make_body, want_status, want_reason, counted, fragment = case
    before = await _state(seeded)
    rejected_before = await seeded.rejected()

    status, answer = await seeded.post(endpoint, make_body())

    assert status == want_status
    assert answer["status"] == "error"
    assert answer["reason"] == want_reason
    assert fragment in answer["error"]
    assert await _state(seeded) == before
    rejected_after = await seeded.rejected()
    assert rejected_after[want_reason] - rejected_before[want_reason] == counted
    assert {r: v for r, v in rejected_after.items() if r != want_reason} == {
        r: v for r, v in rejected_before.items() if r != want_reason
    }


async def test_body_over_the_limit_is_413_too_large(seeded: Daemon) -> None:
    body = _checkout()
    body["alerts"][0]["annotations"]["description"] = "x" * MAX_BODY_BYTES
    before = await _state(seeded)
    rejected_before = (await seeded.rejected())["too_large"]
    for endpoint in (WEBHOOK, V2):
        status, answer = await seeded.post(endpoint, body)
        assert (status, answer["status"], answer["reason"]) == (413, "error", "too_large")
        assert str(MAX_BODY_BYTES) in answer["error"]
    assert await _state(seeded) == before
    assert (await seeded.rejected())["too_large"] - rejected_before == 2


async def test_chunked_body_over_the_limit_is_413_too_large(seeded: Daemon) -> None:
    """Without Content-Length the limit holds while the body is read."""
    payload = json.dumps([{"labels": {"alertname": "Big", "pad": "x" * MAX_BODY_BYTES}}]).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 1024):
            yield payload[start : start + 1024]

    before = await _state(seeded)
    async with seeded.client.post(V2, data=chunks(), headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 413
        answer = await resp.json()
    assert answer["reason"] == "too_large"
    assert await _state(seeded) == before
    assert (await seeded.rejected())["too_large"] == 1


async def test_body_just_under_the_limit_is_accepted(daemon: Daemon) -> None:
    alert = {"labels": {"alertname": "Padded"}, "annotations": {"pad": ""}}
    overhead = len(json.dumps([alert]).encode())
    alert["annotations"]["pad"] = "x" * (MAX_BODY_BYTES - overhead)
    data = json.dumps([alert]).encode()
    assert len(data) == MAX_BODY_BYTES
    assert (await daemon.v2(data))[0] == 200


async def test_rejected_reasons_are_exported_from_the_start(daemon: Daemon) -> None:
    assert await daemon.rejected() == dict.fromkeys(REJECT_REASONS, 0.0)


@pytest.mark.parametrize("endpoint", [WEBHOOK, V2])
async def test_wrong_method_is_a_json_405(daemon: Daemon, endpoint: str) -> None:
    # Not GET: GET /api/v2/alerts is Alertmanager's read API (tests/unit/daemon/api/test_alertmanager_v2.py).
    async with daemon.client.put(endpoint) as resp:
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]
        answer = await resp.json()
    assert answer["status"] == "error"


# -- validation messages ---------------------------------------------------------------------------------


def test_validation_problem_names_at_most_three_fields_and_counts_the_rest() -> None:
    adapter = TypeAdapter(list[dict[str, str]])
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python([{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}, {"e": 5}])
    problem = validation_problem(caught.value)
    assert (problem.reason, status_of(problem)) == ("invalid_payload", 400)
    assert problem.message.startswith("[0].a: ")
    assert "[2].c" in problem.message
    assert "[3].d" not in problem.message
    assert problem.message.endswith("(and 2 more)")


def test_validation_problem_of_bad_json_is_invalid_json() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(list[int]).validate_json(b"[1,")
    assert validation_problem(caught.value).reason == "invalid_json"


# -- no client mistake is a server error -----------------------------------------------------------------

_KEYS = st.sampled_from(
    ["version", "status", "alerts", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "generatorURL"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["4", "firing", "resolved", "0001-01-01T00:00:00Z", "2026-11-23T18:15:58.044Z", "a-b"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def _mutated_capture(draw: st.DrawFn) -> Json:
    """A captured body with one value somewhere replaced by arbitrary JSON."""
    body = copy.deepcopy(capture(draw(st.sampled_from([CHECKOUT_FIRING, PROM_FIRING, DISKFULL_TRUNCATED]))))
    node = body
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return body
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(_JSON)
        return body


def _encode(value: Json) -> bytes:
    return json.dumps(value).encode()


_BODIES = st.one_of(_JSON.map(_encode), _mutated_capture().map(_encode), st.binary(max_size=200))


@pytest.mark.parametrize("endpoint", [WEBHOOK, V2])
@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODIES)
async def test_no_body_is_a_server_error(daemon: Daemon, endpoint: str, body: bytes) -> None:
    async with daemon.client.post(endpoint, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status < 500, await resp.text()
        answer = await resp.json()
    if resp.status == 200:
        assert answer["status"] == "success"
    else:
        assert answer["status"] == "error"
        assert answer["reason"] in REJECT_REASONS
