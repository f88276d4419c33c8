"""Reading the incident history availability is computed from: the timeline marks of every incident and the
labels of the alert that opened it (tables timeline, incidents, alerts; written by the correlator). Bounded
by `since` for the tracker's start-up: what came before is in the daily rollups (daemon.storage.rollups)."""

from __future__ import annotations

import json

from daemon.availability.episodes import KINDS, History, Mark
from daemon.storage.sql import Sql

_CHUNK = 500
"""Fingerprints per IN list: well under either dialect's limit of bound parameters."""


def load_histories(sql: Sql, *, since: float | None = None, until: float | None = None) -> list[History]:
    """Every incident's marks (oldest first) and the labels of the alert that opened it; bound parameters only.
    `since`: only incidents with an episode ending at or after it (open, or resolved since; the tracker's
    start-up, whose earlier downtime is in the daily rollups). `until`: ignore marks after this instant (a
    report of a past period)."""
    histories: dict[int, History] = {}
    openers: dict[int, str] = {}
    marks = ",".join("?" * len(KINDS))
    # The incidents first (by the resolved_at index), then their timelines (by incident): filtered after the
    # join, this walked every timeline row of the history kept (3.6 s of a start with two years, bench/startup.py).
    bound = (
        ""
        if since is None
        else "AND t.incident_id IN (SELECT id FROM incidents WHERE resolved_at IS NULL OR resolved_at >= ?) "
    )
    params: list[object] = [*KINDS, until if until is not None else float("inf")]
    if since is not None:
        params.append(since)
    for r in sql.rows(
        "SELECT t.incident_id, i.service, t.at, t.kind, t.detail FROM timeline t "
        f"JOIN incidents i ON i.id = t.incident_id WHERE t.kind IN ({marks}) AND t.at <= ? {bound}"
        "ORDER BY t.incident_id, t.id",
        params,
    ):
        incident_id, at, kind = r["incident_id"], r["at"], r["kind"]
        h = histories.get(incident_id)
        if h is None:
            h = histories[incident_id] = History(incident_id, r["service"])
        data = json.loads(r["detail"])
        priority = data.get("priority") if kind == "opened" else data.get("to") if kind == "priority_raised" else None
        ended = data.get("ended_at") if kind == "resolved" else None
        # Recorded at `at`, ended earlier: after an expiry or a flapping hold.
        when = float(ended) if isinstance(ended, int | float) and ended <= at else at
        h.marks.append(Mark(when, kind, priority if isinstance(priority, str) else None))
        if kind == "opened" and isinstance(data.get("alert"), str):
            openers[incident_id] = data["alert"]
    by_fingerprint: dict[str, list[int]] = {}
    for incident_id, fingerprint in openers.items():
        by_fingerprint.setdefault(fingerprint, []).append(incident_id)
    fingerprints = list(by_fingerprint)
    for i in range(0, len(fingerprints), _CHUNK):
        chunk = fingerprints[i : i + _CHUNK]
        for r in sql.rows(
            f"SELECT fingerprint, labels FROM alerts WHERE fingerprint IN ({','.join('?' * len(chunk))})", chunk
        ):
            for incident_id in by_fingerprint[r["fingerprint"]]:
                histories[incident_id].labels = json.loads(r["labels"])
    return list(histories.values())
