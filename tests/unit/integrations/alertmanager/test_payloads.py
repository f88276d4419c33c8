"""The two payload formats as Alertmanager 0.25 and Prometheus 2.42 send them (the captures), and what they refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.alertmanager.payloads import WEBHOOK_VERSION, postable_alerts, webhook_payload

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"
WEBHOOKS = sorted((TESTDATA / "alertmanager").glob("am_webhook_*.json"))
POSTS = sorted((TESTDATA / "prometheus").glob("prometheus_post_*.json"))


def body(path: Path) -> Any:
    return json.loads(path.read_text())["body"]


def raw(path: Path) -> bytes:
    return json.dumps(body(path)).encode()


def test_there_are_captures() -> None:
    assert len(WEBHOOKS) == 5
    assert len(POSTS) == 2


@pytest.mark.parametrize("path", WEBHOOKS, ids=lambda p: p.stem)
def test_every_captured_webhook_validates(path: Path) -> None:
    sent = body(path)
    payload = webhook_payload.validate_json(raw(path))
    assert payload["version"] == WEBHOOK_VERSION == sent["version"]
    assert payload["status"] == sent["status"]
    assert payload["truncatedAlerts"] == sent["truncatedAlerts"]
    assert payload["groupKey"] == sent["groupKey"]
    assert len(payload["alerts"]) == len(sent["alerts"])
    for alert, original in zip(payload["alerts"], sent["alerts"], strict=True):
        assert alert["fingerprint"] == original["fingerprint"]
        assert alert["labels"] == original["labels"]
        assert alert["status"] == original["status"]
        assert alert["startsAt"].tzinfo is not None


def test_firing_webhook_alert_carries_go_zero_time() -> None:
    payload = webhook_payload.validate_json(raw(TESTDATA / "alertmanager/am_webhook_firing_single_targetdown.json"))
    ends_at = payload["alerts"][0].get("endsAt")
    assert ends_at is not None
    assert (ends_at.year, ends_at.month, ends_at.day) == (1, 1, 1)


def test_truncated_webhook_counts_what_it_left_out() -> None:
    payload = webhook_payload.validate_json(
        raw(TESTDATA / "alertmanager/am_webhook_max_alerts_2_truncated_firing.json")
    )
    assert (len(payload["alerts"]), payload["truncatedAlerts"]) == (2, 3)


@pytest.mark.parametrize("path", POSTS, ids=lambda p: p.stem)
def test_every_captured_prometheus_post_validates(path: Path) -> None:
    sent = body(path)
    alerts = postable_alerts.validate_json(raw(path))
    assert [a["labels"] for a in alerts] == [a["labels"] for a in sent]
    for alert, original in zip(alerts, sent, strict=True):
        assert alert.get("endsAt") == datetime.fromisoformat(original["endsAt"].replace("Z", "+00:00"))
        assert alert.get("annotations") == original["annotations"]


def test_alertmanager_api_alerts_validate_as_postable_ignoring_their_extra_fields() -> None:
    api = json.loads((TESTDATA / "alertmanager/api_am_api_v2_alerts_firing.json").read_text())["response"]["body"]
    alerts = postable_alerts.validate_json(json.dumps(api))
    assert len(alerts) == len(api) == 8
    assert all("fingerprint" not in a and "status" not in a for a in alerts)


def test_unknown_fields_are_ignored() -> None:
    sent = body(WEBHOOKS[0])
    sent["newField"] = {"x": 1}
    sent["alerts"][0]["silencedBy"] = ["abc"]
    payload = webhook_payload.validate_json(json.dumps(sent))
    assert "newField" not in payload
    assert "silencedBy" not in payload["alerts"][0]


def test_optional_fields_may_be_missing_or_null() -> None:
    [alert] = postable_alerts.validate_json(b'[{"labels": {"a": "b"}, "startsAt": null, "endsAt": null}]')
    assert alert == {"labels": {"a": "b"}, "startsAt": None, "endsAt": None}
    [alert] = postable_alerts.validate_json(b'[{"labels": {"a": "b"}}]')
    assert alert == {"labels": {"a": "b"}}


def test_time_zones_are_kept() -> None:
    [alert] = postable_alerts.validate_json(b'[{"labels": {"a": "b"}, "startsAt": "2026-11-23T20:00:00.5+02:00"}]')
    starts_at = alert.get("startsAt")
    assert isinstance(starts_at, datetime)
    assert starts_at.astimezone(UTC) == datetime(2026, 11, 23, 18, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        ({"labels": {"a": 1}}, (0, "labels", "a")),  # strict: 1 is not "1"
        ({"labels": {"a": None}}, (0, "labels", "a")),
        ({"labels": ["a", "b"]}, (0, "labels")),
        ({"labels": {"a": "b"}, "annotations": {"summary": True}}, (0, "annotations", "summary")),
        ({"labels": {"a": "b"}, "startsAt": "yesterday"}, (0, "startsAt")),
        ({"labels": {"a": "b"}, "endsAt": 1763921758}, (0, "endsAt")),
        ({"labels": {"a": "b"}, "generatorURL": 5}, (0, "generatorURL")),
        ({"annotations": {}}, (0, "labels")),
    ],
)
def test_postable_wrong_types_are_refused_naming_the_field(alert: dict[str, Any], field: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        postable_alerts.validate_json(json.dumps([alert]))
    assert [e["loc"] for e in caught.value.errors()] == [field]


def test_postable_body_must_be_an_array() -> None:
    with pytest.raises(ValidationError):
        postable_alerts.validate_json(json.dumps({"labels": {"a": "b"}}))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(version=4), ("version",)),
        (lambda b: b.update(status="pending"), ("status",)),
        (lambda b: b.pop("alerts"), ("alerts",)),
        (lambda b: b["alerts"][0].update(status="unknown"), ("alerts", 0, "status")),
        (lambda b: b["alerts"][0].pop("fingerprint"), ("alerts", 0, "fingerprint")),
        (lambda b: b["alerts"][0].pop("startsAt"), ("alerts", 0, "startsAt")),
        (lambda b: b["alerts"][0]["labels"].update(instance=3), ("alerts", 0, "labels", "instance")),
        (lambda b: b.update(truncatedAlerts="3"), ("truncatedAlerts",)),
    ],
)
def test_webhook_wrong_shapes_are_refused_naming_the_field(change: Any, field: tuple[Any, ...]) -> None:
    sent = body(WEBHOOKS[0])
    change(sent)
    with pytest.raises(ValidationError) as caught:
        webhook_payload.validate_json(json.dumps(sent))
    assert [e["loc"] for e in caught.value.errors()] == [field]
