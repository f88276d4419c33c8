"""Alertmanager's alert fingerprint, computed the way prometheus/common model.LabelSet.Fingerprint does.

FNV-1a 64 over the label names in sorted order, each name then its value, each followed by the byte 0xff,
printed as 16 lowercase hex digits. Computing the same value lets an alert that Prometheus posts directly and
the same alert delivered by Alertmanager's webhook dedup to one record. Alertmanager hashes a label set only
after dropping its labels with an empty value (`without_empty`).
"""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF


def without_empty(labels: Mapping[str, str]) -> dict[str, str]:
    """A label set without its empty-valued labels, as Alertmanager's removeEmptyLabels leaves it before it
    validates and hashes: `{alertname="X", team=""}` is the alert `{alertname="X"}`."""
    return {name: value for name, value in labels.items() if value}


def fingerprint(labels: Mapping[str, str]) -> str:
    return _fingerprint_of_items(tuple(sorted(labels.items())))


def _fingerprint_of_items(items: tuple[tuple[str, str], ...]) -> str:
    # The loop runs per byte in Python: the ingest path asks the alert table first (AlertTable.fingerprint_of)
    # and computes this only for label sets it does not hold. No cache here: one big enough for a large
    # active set held about 1.5 KB per entry, and it missed once the set outgrew it.
    h = _OFFSET
    for name, value in items:
        for part in (name, value):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _PRIME) & _MASK
    return f"{h:016x}"
