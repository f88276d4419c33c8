"""Records to rows and back. The only place that knows both the model and the column order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from daemon.model import Alert, AlertStatus, Source

AlertRow = tuple[Any, ...]

ALERT_COLUMNS = (
    "fingerprint, labels, annotations, status, starts_at, ends_at, generator_url, sources, "
    "first_seen, last_seen, times_seen, state_changes, expires_at, incident_id"
)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def alert_row(a: Alert) -> AlertRow:
    return (
        a.fingerprint,
        _dump(a.labels),
        _dump(a.annotations),
        a.status.value,
        a.starts_at,
        a.ends_at,
        a.generator_url,
        int(a.sources),
        a.first_seen,
        a.last_seen,
        a.times_seen,
        a.state_changes,
        a.expires_at,
        a.incident_id,
    )


def alert_touch_row(a: Alert) -> tuple[Any, ...]:
    """The columns a re-send changes; much cheaper than a whole row (no JSON)."""
    return (a.last_seen, a.times_seen, int(a.sources), a.expires_at, a.fingerprint)


def alert_from_row(r: Sequence[Any]) -> Alert:
    return Alert(
        fingerprint=r[0],
        labels=json.loads(r[1]),
        annotations=json.loads(r[2]),
        status=AlertStatus(r[3]),
        starts_at=r[4],
        ends_at=r[5],
        generator_url=r[6],
        sources=Source(r[7]),
        first_seen=r[8],
        last_seen=r[9],
        times_seen=r[10],
        state_changes=r[11],
        expires_at=r[12],
        incident_id=r[13],
    )


def labels_key(labels: Sequence[tuple[str, str]]) -> str:
    return _dump(dict(labels))
