"""From validated payloads to IncomingAlert records: identity, status, times, label checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from daemon.api.errors import status_of
from daemon.config import IngestConfig
from daemon.errors import RequestError
from daemon.ingest.normalize import from_postable, from_webhook
from daemon.model import Alert, AlertStatus, IncomingAlert, Source
from integrations.alertmanager.fingerprint import fingerprint
from integrations.alertmanager.payloads import WebhookPayload, postable_alerts, webhook_payload

from .conftest import TESTDATA, Json, capture, epoch

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
    assert (caught.value.reason, status_of(caught.value)) == ("fingerprint_mismatch", 400)
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
    labels = {"alertname": "X", "instance": "ünïcödé ✓", "expr": 'up{job="x"} == 0\n'}
    [alert] = postable([{"labels": labels}])
    assert alert.labels == labels
    assert alert.fingerprint == fingerprint(labels)


@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True), st.text(), min_size=1))
def test_any_valid_label_set_is_accepted_with_its_fingerprint(labels: dict[str, str]) -> None:
    kept = {name: value for name, value in labels.items() if value}
    if not kept:
        with pytest.raises(RequestError):
            postable([{"labels": labels}])
        return
    [alert] = postable([{"labels": labels}])
    assert alert.labels == kept
    assert alert.fingerprint == fingerprint(kept)


# -- empty label values: no label, as in Alertmanager -------------------------------------------------------

EMPTY_VALUES = json.loads((TESTDATA / "alertmanager" / "am_api_v2_empty_label_values.json").read_text())["cases"]
"""What the real Alertmanager 0.25 kept of label sets with empty values (tests/e2e/test_identity_empty_labels.py)."""


@pytest.mark.parametrize("case", EMPTY_VALUES, ids=[c["posted"]["labels"]["alertname"] for c in EMPTY_VALUES])
def test_postable_empty_label_values_give_alertmanagers_labels_and_fingerprint(case: Json) -> None:
    [alert] = postable([case["posted"]])
    assert (alert.labels, alert.fingerprint) == (case["labels"], case["fingerprint"])
    assert alert.annotations == case["annotations"]  # an empty annotation is kept, as Alertmanager keeps it


@pytest.mark.parametrize("case", EMPTY_VALUES, ids=[c["posted"]["labels"]["alertname"] for c in EMPTY_VALUES])
def test_webhook_with_empty_label_values_is_the_alert_without_them(case: Json) -> None:
    """Alertmanager's webhooks never carry empty values; a hand-made one with its fingerprint is the same alert."""
    body = {"status": "firing", "labels": case["posted"]["labels"], "startsAt": "2026-11-23T18:00:00Z"}
    payload = as_webhook({"version": "4", "status": "firing", "alerts": [{**body, "fingerprint": case["fingerprint"]}]})
    [new] = from_webhook(payload, nothing_known, NOW)
    assert (new.labels, new.fingerprint) == (case["labels"], case["fingerprint"])
    known = stored(case["labels"])
    [again] = from_webhook(payload, {known.fingerprint: known}.get, NOW)
    assert (again.labels, again.fingerprint) == (case["labels"], case["fingerprint"])


def test_webhook_fingerprint_hashed_over_an_empty_value_is_not_alertmanagers() -> None:
    labels = {"alertname": "X", "team": ""}
    hashed_with_empty = fingerprint(labels)
    alert = {"status": "firing", "labels": labels, "startsAt": "2026-11-23T18:00:00Z", "fingerprint": hashed_with_empty}
    payload = as_webhook({"version": "4", "status": "firing", "alerts": [alert]})
    with pytest.raises(RequestError) as caught:
        from_webhook(payload, nothing_known, NOW)
    assert caught.value.reason == "fingerprint_mismatch"
    assert "empty value" in caught.value.message


@pytest.mark.parametrize("labels", [{"team": ""}, {"team": "", "bad-name": "", "": ""}])
def test_label_set_of_empty_values_only_is_refused(labels: dict[str, str]) -> None:
    """Alertmanager answers 400 "at least one label pair required" to these."""
    with pytest.raises(RequestError) as caught:
        postable([{"labels": {"alertname": "ok"}}, {"labels": labels}])
    assert caught.value.reason == "invalid_labels"
    assert caught.value.message.startswith("[1].labels: an alert needs at least one label; every value is empty")


def test_empty_values_do_not_count_towards_the_label_limit() -> None:
    limits = IngestConfig(max_labels_per_alert=2)
    raw = postable_alerts.validate_json(json.dumps([{"labels": {"alertname": "X", "a": "1", "b": "", "c": ""}}]))
    [alert] = from_postable(raw, NOW, limits)
    assert alert.labels == {"alertname": "X", "a": "1"}


def test_nulls_and_empty_times_are_unset() -> None:
    """What Alertmanager's POST /api/v2/alerts takes: null annotations and generatorURL, empty times."""
    raw = {"labels": {"alertname": "X"}, "annotations": None, "generatorURL": None, "startsAt": "", "endsAt": ""}
    [alert] = postable([raw])
    assert (alert.annotations, alert.generator_url, alert.starts_at, alert.ends_at, alert.firing) == (
        {},
        "",
        NOW,
        None,
        True,
    )


def _postable_properties() -> dict[str, Json]:
    """The properties of Alertmanager 0.25's postableAlert (allOf its own and those of alert)."""
    spec = yaml.safe_load((TESTDATA / "alertmanager" / "openapi-v0.25.0-postable-alert.yaml").read_text())
    properties: dict[str, Json] = {}
    for part in spec["definitions"]["postableAlert"]["allOf"]:
        resolved = spec["definitions"][part["$ref"].rsplit("/", 1)[-1]] if "$ref" in part else part
        properties.update(resolved["properties"])
    return properties


@pytest.mark.parametrize("name", sorted(set(_postable_properties()) - {"labels"}))
def test_every_optional_field_of_alertmanagers_postable_alert_may_be_null(name: str) -> None:
    [alert] = postable([{"labels": {"alertname": "X"}, name: None}])
    assert alert.labels == {"alertname": "X"}


def test_postable_takes_a_known_alerts_fingerprint_and_computes_the_others() -> None:
    raw = postable_alerts.validate_json(json.dumps([{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]))
    asked: list[dict[str, str]] = []

    def known(labels: dict[str, str]) -> str | None:
        asked.append(labels)
        return "00000000000000aa" if labels == {"alertname": "A"} else None

    a, b = from_postable(raw, NOW, known=known)
    assert (a.fingerprint, b.fingerprint) == ("00000000000000aa", fingerprint({"alertname": "B"}))
    assert asked == [{"alertname": "A"}, {"alertname": "B"}]


def test_postable_times_are_each_alerts_own_when_they_differ_and_shared_when_equal() -> None:
    alerts = postable(
        [
            {"labels": {"alertname": "A"}, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T00:04:00Z"},
            {"labels": {"alertname": "B"}, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T00:04:00Z"},
            {"labels": {"alertname": "C"}, "startsAt": "2030-01-01T01:00:00+01:00", "endsAt": "2030-01-01T00:05:00Z"},
            {"labels": {"alertname": "D"}, "startsAt": "2030-01-01T00:00:01Z"},
        ]
    )
    base = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert [(a.starts_at - base, a.ends_at) for a in alerts] == [
        (0.0, base + 240),
        (0.0, base + 240),
        (0.0, base + 300),  # the same instant written in another zone
        (1.0, None),
    ]
    # One float for equal times: a re-send of a group replaces one object, not one per alert.
    assert alerts[0].ends_at is alerts[1].ends_at
