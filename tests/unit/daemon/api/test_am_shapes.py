"""The pieces of the Alertmanager v2 shapes: times, group labels, the scrubbed config."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.api.am_alerts import group_labels, timestamp
from daemon.api.am_status import scrub
from daemon.model import Incident, IncidentStatus


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("2026-11-23T18:15:57.123Z", "2026-11-23T18:15:57.123Z"),  # 0.123 is stored as 0.12299...
        ("2026-11-23T18:15:57.999999Z", "2026-11-23T18:15:57.999Z"),  # truncated, as Go prints it
        ("2026-11-23T18:15:57Z", "2026-11-23T18:15:57.000Z"),
        ("2026-11-23T19:15:57.5+01:00", "2026-11-23T18:15:57.500Z"),
        ("0141-12-26T18:59:16Z", "0141-12-26T18:59:16.000Z"),  # found by the OpenAPI fuzz: four-digit years
    ],
)
def test_times_print_as_alertmanager_prints_them(text: str, printed: str) -> None:
    seconds = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert timestamp(seconds) == printed


def test_times_to_the_millisecond_survive_the_float() -> None:
    start = datetime(2026, 11, 23, 18, 0, tzinfo=UTC).timestamp()
    for millis in range(1000):
        assert timestamp(start + millis / 1000).endswith(f".{millis:03d}Z"), millis


def incident(key: str) -> Incident:
    return Incident(1, key, "api", "t", IncidentStatus.OPEN, opened_at=0.0)


def test_group_labels_come_from_the_incident_key() -> None:
    assert group_labels(incident('{alertname="HighLatency",service="api"}')) == {
        "alertname": "HighLatency",
        "service": "api",
    }
    # A rule's prefix, quotes and commas in values, and labels the alert did not have (left out).
    key = 'edge:{alertname="A \\"quoted\\", b",region="",service="api"}'
    assert group_labels(incident(key)) == {"alertname": 'A "quoted", b', "service": "api"}


def test_scrub_drops_secret_values_and_keeps_where_they_come_from() -> None:
    document = {
        "auth": {"api": {"read_tokens": [{"token_env": "READ", "token": "leak-1"}]}},
        "alertmanager": {"url": "http://u:leak-2@am:9093/?token=leak-3", "bearer_token": "ENV_NAME"},
        "runbooks": {"secrets": {"db": {"env": "DB_PW", "password": "leak-4"}}},
        "tls": {"key_file": "/etc/key.pem"},
        "listen": "127.0.0.1:9797",
    }
    assert scrub(document) == {
        "auth": {"api": {"read_tokens": [{"token_env": "READ"}]}},
        "alertmanager": {"url": "http://u:xxxxx@am:9093/"},
        "runbooks": {"secrets": {"db": {"env": "DB_PW"}}},
        "tls": {"key_file": "/etc/key.pem"},
        "listen": "127.0.0.1:9797",
    }
