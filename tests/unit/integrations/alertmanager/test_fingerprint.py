"""The fingerprint is Alertmanager's: checked against every fingerprint Alertmanager reported in the captures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.alertmanager.fingerprint import fingerprint, fnv1a_64, fnv1a_64_python, label_bytes

TESTDATA = Path(__file__).resolve().parents[3] / "testdata"


def _reported() -> list[tuple[str, dict[str, str], str]]:
    """(capture, labels, fingerprint) for every alert Alertmanager reported with a fingerprint."""
    out = []
    for path in sorted((TESTDATA / "alertmanager").glob("am_webhook_*.json")):
        for alert in json.loads(path.read_text())["body"]["alerts"]:
            out.append((path.stem, alert["labels"], alert["fingerprint"]))
    api = json.loads((TESTDATA / "alertmanager" / "api_am_api_v2_alerts_firing.json").read_text())
    for alert in api["response"]["body"]:
        out.append(("api_am_api_v2_alerts_firing", alert["labels"], alert["fingerprint"]))
    return out


REPORTED = _reported()


def test_the_captures_hold_enough_fingerprints() -> None:
    assert len(REPORTED) >= 20
    assert len({fp for _, _, fp in REPORTED}) == 9  # 3 checkout, 5 DiskFull, 1 TargetDown


@pytest.mark.parametrize(
    ("labels", "expected"), [(labels, fp) for _, labels, fp in REPORTED], ids=[f"{c}-{fp}" for c, _, fp in REPORTED]
)
def test_fingerprint_is_the_one_alertmanager_reported(labels: dict[str, str], expected: str) -> None:
    assert fingerprint(labels) == expected


def test_prometheus_posted_alerts_get_the_webhooks_fingerprints() -> None:
    by_labels = {frozenset(labels.items()): fp for _, labels, fp in REPORTED}
    posted: list[dict[str, Any]] = []
    for path in sorted((TESTDATA / "prometheus").glob("prometheus_post_*.json")):
        posted.extend(json.loads(path.read_text())["body"])
    diskfull = [a for a in posted if a["labels"]["alertname"] == "DiskFull"]
    assert len(diskfull) == 5
    for alert in posted:
        assert fingerprint(alert["labels"]) == by_labels[frozenset(alert["labels"].items())]


@pytest.mark.parametrize(
    ("labels", "value"),
    [
        # prometheus/common model: TestMetricToFingerprint / TestLabelsToSignature
        ({}, 14695981039346656037),
        ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
    ],
)
def test_known_values_of_prometheus_common(labels: dict[str, str], value: int) -> None:
    assert fingerprint(labels) == f"{value:016x}"


def test_fingerprint_is_16_lowercase_hex_digits_with_leading_zeros() -> None:
    for _, labels, _ in REPORTED:
        fp = fingerprint(labels)
        assert len(fp) == 16
        assert fp == fp.lower()
        int(fp, 16)
    # 0dc6b1a57e388f85 (checkout-3) starts with a zero: it must not lose it
    assert any(fp.startswith("0") for _, _, fp in REPORTED)


def test_names_and_values_are_separated() -> None:
    assert fingerprint({"a": "bc"}) != fingerprint({"ab": "c"})
    assert fingerprint({"a": "b", "c": "d"}) != fingerprint({"a": "bc", "": "d"})


def test_values_are_hashed_as_utf8() -> None:
    # FNV-1a 64 over b"k" 0xff "é".encode() 0xff, written out by hand.
    h = 14695981039346656037
    for byte in b"k\xff" + "é".encode() + b"\xff":
        h = ((h ^ byte) * 1099511628211) % 2**64
    assert fingerprint({"k": "é"}) == f"{h:016x}"


def test_changing_any_label_changes_the_fingerprint() -> None:
    _, labels, fp = REPORTED[0]
    for name in labels:
        assert fingerprint({**labels, name: labels[name] + "x"}) != fp
        assert fingerprint({k: v for k, v in labels.items() if k != name}) != fp
    assert fingerprint({**labels, "extra": ""}) != fp


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=8), st.randoms())
def test_label_order_does_not_matter(labels: dict[str, str], random: Any) -> None:
    items = list(labels.items())
    random.shuffle(items)
    assert fingerprint(dict(items)) == fingerprint(labels)


@given(st.binary(max_size=512))
def test_the_native_hash_is_the_python_one(data: bytes) -> None:
    assert fnv1a_64(data) == fnv1a_64_python(data)


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=8))
def test_the_fingerprint_hashes_the_label_bytes(labels: dict[str, str]) -> None:
    assert fingerprint(labels) == f"{fnv1a_64_python(label_bytes(labels)):016x}"
