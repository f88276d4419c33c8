"""From validated payloads to IncomingAlert records: identity, status, times, label checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import RequestError
from daemon.ingest.normalize import from_postable, from_webhook
from daemon.model import Alert, AlertStatus, IncomingAlert, Source
from integrations.alertmanager.fingerprint import fingerprint
from integrations.alertmanager.payloads import WebhookPayload, postable_alerts, webhook_payload

from .conftest import Json, capture, epoch

NOW = epoch("2026-11-23T18:16:00Z")


def as_webhook(body: Json) -> WebhookPayload:
    """Validated from JSON, as the handler does (strict mode parses times only from JSON strings)."""
    return webhook_payload.validate_json(json.dumps(body))


def webhook(name: str) -> WebhookPayload:
    return as_webhook(capture(name))


def nothing_known(fingerprint: str) -> Alert | None:
    return None


def stored(labels: dict[str, str]) -> Alert:
    return Alert(
        fingerprint=fingerprint(labels),
        labels=dict(labels),
        annotations={},
        status=AlertStatus.FIRING,
        starts_at=NOW,
        ends_at=None,
        generator_url="",
        sources=Source.ALERTMANAGER,
        first_seen=NOW,
        last_seen=NOW,
    )


def postable(body: Json) -> list[IncomingAlert]:
    return from_postable(postable_alerts.validate_json(json.dumps(body)), NOW)


# -- webhook ----------------------------------------------------------------------------------------------


def test_webhook_firing_alerts_keep_their_fingerprint_and_have_no_end() -> None:
    payload = webhook("am_webhook_firing_grouped_checkout_3_alerts.json")
    alerts = from_webhook(payload, nothing_known, NOW)
    assert [a.fingerprint for a in alerts] == [a["fingerprint"] for a in payload["alerts"]]
    for alert, raw in zip(alerts, payload["alerts"], strict=True):
        assert alert.firing is True
        assert alert.ends_at is None  # 0001-01-01T00:00:00Z: Alertmanager hides a future endsAt
        assert alert.starts_at == epoch("2026-11-23T18:15:58.044Z")
        assert alert.labels == raw["labels"]
        assert alert.annotations == raw["annotations"]
        assert alert.generator_url == raw["generatorURL"]


def test_webhook_resolved_alerts_carry_their_end() -> None:
    alerts = from_webhook(webhook("am_webhook_resolved_checkout.json"), nothing_known, NOW)
    assert [(a.firing, a.ends_at) for a in alerts] == [(False, epoch("2026-11-23T18:16:15.044Z"))] * 2


def test_webhook_without_optional_fields_gets_defaults() -> None:
    labels = {"alertname": "Bare"}
    payload = as_webhook(
        {
            "version": "4",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "startsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": fingerprint(labels),
                }
            ],
        }
    )
    [alert] = from_webhook(payload, nothing_known, NOW)
    assert (alert.annotations, alert.generator_url, alert.ends_at) == ({}, "", None)
    assert alert.starts_at == NOW  # a zero startsAt is "unknown": taken as now


def test_webhook_fingerprint_must_be_that_of_its_labels() -> None:
    payload = webhook("am_webhook_firing_grouped_checkout_3_alerts.json")
    payload["alerts"][2]["fingerprint"] = "0000000000000000"
    with pytest.raises(RequestError) as caught:
        from_webhook(payload, nothing_known, NOW)
    assert (caught.value.reason, caught.value.status) == ("fingerprint_mismatch", 400)
    assert caught.value.message.startswith("alerts[2].fingerprint: '0000000000000000'")


def test_webhook_fingerprint_of_a_known_alert_must_come_with_its_labels() -> None:
    payload = webhook("am_webhook_max_alerts_2_truncated_firing.json")
    db1 = stored(payload["alerts"][0]["labels"])
    assert db1.fingerprint == payload["alerts"][0]["fingerprint"]
    payload["alerts"][1]["fingerprint"] = db1.fingerprint  # db-2's labels under db-1's fingerprint
    known = {db1.fingerprint: db1}
    with pytest.raises(RequestError) as caught:
        from_webhook(payload, known.get, NOW)
    assert caught.value.reason == "fingerprint_mismatch"
    assert "alerts[1].fingerprint" in caught.value.message


def test_webhook_known_alert_with_same_labels_is_accepted() -> None:
    payload = webhook("am_webhook_firing_single_targetdown.json")
    known = stored(payload["alerts"][0]["labels"])
    [alert] = from_webhook(payload, {known.fingerprint: known}.get, NOW)
    assert alert.fingerprint == known.fingerprint


# -- /api/v2/alerts ------------------------------------------------------------------------------------


def test_postable_fingerprint_is_alertmanagers() -> None:
    """Prometheus sends no fingerprint: it is computed, and is the one Alertmanager gave the same alerts."""
    reported = {
        frozenset(a["labels"].items()): a["fingerprint"]
        for a in capture("am_webhook_firing_grouped_diskfull_5_alerts.json")["alerts"]
    }
    alerts = postable(capture("prometheus_post_api_v2_alerts_firing.json"))
    assert len(alerts) == 5
    for alert in alerts:
        assert alert.fingerprint == reported[frozenset(alert.labels.items())]


@pytest.mark.parametrize(
    ("ends_at", "firing"),
    [
        ("2026-11-23T18:15:59Z", False),
        ("2026-11-23T18:16:00Z", False),  # not in the future: resolved
        ("2026-11-23T18:16:00.001Z", True),
        ("2026-11-23T18:20:00Z", True),
        (None, True),
        ("0001-01-01T00:00:00Z", True),  # Go's zero time is "no end"
    ],
)
def test_postable_status_comes_from_endsat(ends_at: str | None, firing: bool) -> None:
    raw: dict[str, object] = {"labels": {"alertname": "X"}, "startsAt": "2026-11-23T18:00:00Z"}
    if ends_at is not None:
        raw["endsAt"] = ends_at
    [alert] = postable([raw])
    assert alert.firing is firing
    if ends_at is not None and not ends_at.startswith("0001"):
        assert alert.ends_at == epoch(ends_at)
    else:
        assert alert.ends_at is None


def test_postable_without_times_starts_now() -> None:
    [alert] = postable([{"labels": {"alertname": "X"}}])
    assert (alert.starts_at, alert.ends_at, alert.firing) == (NOW, None, True)


def test_postable_time_without_zone_is_utc() -> None:
    [alert] = postable([{"labels": {"a": "b"}, "startsAt": "2026-11-23T18:00:00"}])
    assert alert.starts_at == datetime(2026, 11, 23, 18, tzinfo=UTC).timestamp()


def test_postable_time_with_offset_is_the_same_instant() -> None:
    [alert] = postable([{"labels": {"a": "b"}, "startsAt": "2026-11-23T20:00:00+02:00"}])
    assert alert.starts_at == epoch("2026-11-23T18:00:00Z")


# -- labels ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alertname", "_private", "__name__", "a1", "A_B_9", "x" * 200])
def test_valid_label_names(name: str) -> None:
    [alert] = postable([{"labels": {name: "v"}}])
    assert alert.labels == {name: "v"}


@pytest.mark.parametrize("name", ["", "1a", "a-b", "a.b", "a b", "ä", "a:b", "$x", "a\n"])
def test_invalid_label_names_are_refused_naming_the_alert(name: str) -> None:
    with pytest.raises(RequestError) as caught:
        postable([{"labels": {"alertname": "ok"}}, {"labels": {"alertname": "X", name: "v"}}])
    assert caught.value.reason == "invalid_labels"
    assert caught.value.message == f"[1].labels: {name!r} is not a valid label name"


def test_invalid_label_name_in_webhook_is_refused_before_fingerprint() -> None:
    labels = {"alertname": "X", "bad-name": "v"}
    payload = as_webhook(
        {
            "version": "4",
            "status": "firing",
            "alerts": [
                {"status": "firing", "labels": labels, "startsAt": "2026-11-23T18:00:00Z", "fingerprint": "nope"}
            ],
        }
    )
    with pytest.raises(RequestError) as caught:
        from_webhook(payload, nothing_known, NOW)
    assert caught.value.reason == "invalid_labels"
    assert caught.value.message.startswith("alerts[0].labels:")


def test_empty_label_set_is_refused() -> None:
    with pytest.raises(RequestError) as caught:
        postable([{"labels": {}}])
    assert (caught.value.reason, caught.value.message) == (
        "invalid_labels",
        "[0].labels: an alert needs at least one label",
    )


def test_label_values_may_be_anything() -> None:
    labels = {"alertname": "", "instance": "ünïcödé ✓", "expr": 'up{job="x"} == 0\n'}
    [alert] = postable([{"labels": labels}])
    assert alert.labels == labels
    assert alert.fingerprint == fingerprint(labels)


@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True), st.text(), min_size=1))
def test_any_valid_label_set_is_accepted_with_its_fingerprint(labels: dict[str, str]) -> None:
    [alert] = postable([{"labels": labels}])
    assert alert.labels == labels
    assert alert.fingerprint == fingerprint(labels)
