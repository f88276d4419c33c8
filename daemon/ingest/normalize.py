"""From a validated payload to IncomingAlert records, refusing what Alertmanager itself would refuse.

A label with an empty value is no label: Alertmanager drops such labels before it validates and hashes
(`{alertname="X", team=""}` is the alert `{alertname="X"}`), so itsmd does the same on both paths, and an
alert left without labels is refused. Label names must be Prometheus label names; a webhook fingerprint must
be the one its labels give (checked once per new alert), so both ingest paths agree on identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from daemon.config import IngestConfig
from daemon.errors import InvalidInput, TooLarge
from daemon.model import Alert, IncomingAlert
from integrations.alertmanager.fingerprint import fingerprint, without_empty
from integrations.alertmanager.payloads import PostableAlert, WebhookPayload

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_valid_names: set[str] = set()
_MAX_REMEMBERED_NAMES = 10_000

Lookup = Callable[[str], Alert | None]
KnownLabels = Callable[[dict[str, str]], str | None]
"""The fingerprint of an alert held with exactly these labels, or None."""


def unknown_labels(_: dict[str, str]) -> str | None:
    """No alert is held: every fingerprint is computed."""
    return None


def unknown_alert(_: str) -> Alert | None:
    """No alert is held: every webhook fingerprint is checked against its labels."""
    return None


MAX_LABEL_NAME = 256
DEFAULT_LIMITS = IngestConfig()


def _check_values(values: dict[str, str], where: str, cap: int) -> None:
    for name, value in values.items():
        # len() in characters first: UTF-8 takes at most 4 bytes a character, so most values need no encode.
        if len(value) * 4 > cap and len(value.encode()) > cap:
            raise InvalidInput("limit_exceeded", f"{where}.{name}: value is over {cap} bytes")


def _checked_labels(labels: dict[str, str], where: str, limits: IngestConfig) -> dict[str, str]:
    """The labels as Alertmanager keeps them (empty values dropped, then validated); refuses a bad set.

    One pass over the labels checks names and value sizes and notices empty values; only a set that has
    one is copied, so the usual alert costs no second pass.
    """
    cap = limits.max_label_value_bytes
    empty = False
    for name, value in labels.items():
        if not value:
            empty = True
            continue
        if name not in _valid_names:
            if not _LABEL_NAME.fullmatch(name) or len(name) > MAX_LABEL_NAME:
                raise InvalidInput(
                    "invalid_labels", f"{where}.labels: {name[:MAX_LABEL_NAME]!r} is not a valid label name"
                )
            if len(_valid_names) < _MAX_REMEMBERED_NAMES:
                _valid_names.add(name)
        # len() in characters first: UTF-8 takes at most 4 bytes a character, so most values need no encode.
        if len(value) * 4 > cap and len(value.encode()) > cap:
            raise InvalidInput("limit_exceeded", f"{where}.labels.{name}: value is over {cap} bytes")
    if not labels:
        raise InvalidInput("invalid_labels", f"{where}.labels: an alert needs at least one label")
    if empty:
        labels = without_empty(labels)
        if not labels:
            raise InvalidInput(
                "invalid_labels",
                f"{where}.labels: an alert needs at least one label; every value is empty, and a label with an"
                " empty value is no label (as in Alertmanager)",
            )
    if len(labels) > limits.max_labels_per_alert:
        raise InvalidInput(
            "limit_exceeded", f"{where}.labels: {len(labels)} labels, over the limit of {limits.max_labels_per_alert}"
        )
    return labels


def _check_count(n: int, limits: IngestConfig) -> None:
    if n > limits.max_alerts_per_request:
        raise TooLarge(
            "too_many_alerts", f"{n} alerts in one request, over the limit of {limits.max_alerts_per_request}"
        )


# The latest instant every consumer of a stored time can print (9999-12-31T23:59:59Z).
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _epoch(value: datetime | str | None, where: str) -> float | None:
    """Seconds since the epoch; None for a missing or empty time or Go's zero time (0001-01-01T00:00:00Z)."""
    if value is None or isinstance(value, str) or value.year <= 1:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = value.timestamp()
    if ts > _LATEST:
        raise InvalidInput("invalid_payload", f"{where}: {value.isoformat()} is after the year 9999")
    return ts


def from_webhook(
    payload: WebhookPayload, lookup: Lookup, now: float, limits: IngestConfig = DEFAULT_LIMITS
) -> list[IncomingAlert]:
    _check_count(len(payload["alerts"]), limits)
    out = []
    for i, raw in enumerate(payload["alerts"]):
        where = f"alerts[{i}]"
        labels = raw["labels"]
        fp = raw["fingerprint"]
        known = lookup(fp)
        annotations = raw.get("annotations") or {}
        _check_values(annotations, f"{where}.annotations", limits.max_annotation_value_bytes)
        # A known alert re-sent as stored is the hot path: one comparison. Anything else is checked whole.
        if known is None or known.labels != labels:
            labels = _checked_labels(labels, where, limits)
            if known is None and fingerprint(labels) != fp:
                raise InvalidInput(
                    "fingerprint_mismatch",
                    f"{where}.fingerprint: {fp!r} is not the fingerprint of its labels"
                    " (Alertmanager's: labels with an empty value are left out)",
                )
            if known is not None and known.labels != labels:
                raise InvalidInput("fingerprint_mismatch", f"{where}.fingerprint: {fp!r} belongs to other labels")
        starts_at = _epoch(raw["startsAt"], f"{where}.startsAt")
        out.append(
            IncomingAlert(
                fingerprint=fp,
                labels=labels,
                annotations=annotations,
                firing=raw["status"] == "firing",
                starts_at=now if starts_at is None else starts_at,
                ends_at=_epoch(raw.get("endsAt"), f"{where}.endsAt"),
                generator_url=raw.get("generatorURL") or "",
            )
        )
    return out


def from_postable(
    alerts: Sequence[PostableAlert],
    now: float,
    limits: IngestConfig = DEFAULT_LIMITS,
    *,
    known: KnownLabels = unknown_labels,
) -> list[IncomingAlert]:
    """Alerts as Prometheus posts them: resolved means endsAt is not in the future. `known` gives the
    fingerprint of an alert already held with these labels, so a re-send skips computing it."""
    _check_count(len(alerts), limits)
    out = []
    for i, raw in enumerate(alerts):
        labels = _checked_labels(raw["labels"], f"[{i}]", limits)
        annotations = raw.get("annotations") or {}
        _check_values(annotations, f"[{i}].annotations", limits.max_annotation_value_bytes)
        starts_at = _epoch(raw.get("startsAt"), f"[{i}].startsAt")
        ends_at = _epoch(raw.get("endsAt"), f"[{i}].endsAt")
        out.append(
            IncomingAlert(
                fingerprint=known(labels) or fingerprint(labels),
                labels=labels,
                annotations=annotations,
                firing=ends_at is None or ends_at > now,
                starts_at=now if starts_at is None else starts_at,
                ends_at=ends_at,
                generator_url=raw.get("generatorURL") or "",
            )
        )
    return out
