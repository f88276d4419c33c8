from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from daemon.model import Alert, AlertStatus, Source
from daemon.storage.alerts import (
    active_alert_pages,
    alert_row,
    alert_touch_row,
    load_active_alerts,
    load_alert,
    load_alerts,
    read_alert,
    read_alerts,
)
from daemon.storage.database import Batch
from daemon.storage.sql import Backend, row_json, row_value

T0 = 1_800_000_000.0


def _alert(fp: str, status: AlertStatus = AlertStatus.FIRING, **more: Any) -> Alert:
    fields: dict[str, Any] = {
        "fingerprint": fp,
        "labels": {"alertname": "Down", "instance": fp, "note": 'q"uo\\te ☕'},
        "annotations": {"summary": "down"},
        "status": status,
        "starts_at": T0,
        "ends_at": None,
        "generator_url": "http://prom/graph",
        "sources": Source.ALERTMANAGER | Source.PROMETHEUS,
        "first_seen": T0,
        "last_seen": T0 + 5,
        "times_seen": 2,
        "state_changes": 1,
        "expires_at": T0 + 300,
        "incident_id": None,
    }
    fields.update(more)
    return Alert(**fields)


def _store(backend: Backend, *alerts: Alert) -> None:
    batch = Batch()
    for a in alerts:
        batch.alerts[a.fingerprint] = alert_row(a)
    backend.write(batch)


def _fields(a: Alert | None) -> tuple[Any, ...]:
    assert a is not None
    return alert_row(a)


def test_an_alert_reads_back_as_written(sql_backend: Backend) -> None:
    a = _alert("a1", incident_id=None)
    _store(sql_backend, a)
    assert _fields(load_alert(sql_backend.primary, "a1")) == alert_row(a)
    assert load_alert(sql_backend.primary, "missing") is None


def test_load_alerts_finds_any_number_by_fingerprint(sql_backend: Backend) -> None:
    stored = [_alert(f"fp{i}") for i in range(1200)]
    _store(sql_backend, *stored)
    wanted = [f"fp{i}" for i in range(0, 1200, 2)] + ["nope"]
    found = load_alerts(sql_backend.primary, wanted)
    assert sorted(found) == sorted(wanted[:-1])
    assert found["fp10"].labels == stored[10].labels
    assert load_alerts(sql_backend.primary, []) == {}


def test_touches_update_the_seen_columns_only(sql_backend: Backend) -> None:
    a = _alert("a1")
    _store(sql_backend, a)
    touched = replace(a, last_seen=T0 + 60, times_seen=9, sources=Source.PROMETHEUS, expires_at=T0 + 900)
    batch = Batch()
    batch.alert_touches["a1"] = alert_touch_row(touched)
    sql_backend.write(batch)
    assert _fields(load_alert(sql_backend.primary, "a1")) == alert_row(touched)


def test_the_active_load_keeps_firing_and_recently_ended_alerts(sql_backend: Backend) -> None:
    _store(
        sql_backend,
        _alert("firing-old", starts_at=T0 - 86400, last_seen=T0 - 86400),
        _alert("ended-recently", AlertStatus.RESOLVED, ends_at=T0 + 50),
        _alert("ended-long-ago", AlertStatus.RESOLVED, ends_at=T0 - 7200),
        _alert("expired-recently", AlertStatus.EXPIRED, ends_at=None, last_seen=T0 + 10),
    )
    active = load_active_alerts(sql_backend.primary, now=T0 + 100, retention=3600)
    assert sorted(a.fingerprint for a in active) == ["ended-recently", "expired-recently", "firing-old"]


def test_the_active_set_comes_a_page_at_a_time_from_a_reader(sql_backend: Backend) -> None:
    """Start-up reads the active set in pages on a reader (on PostgreSQL a server-side cursor in a
    transaction of its own): every active alert exactly once, no page above its size."""
    firing = [_alert(f"f{i:02}") for i in range(7)]
    ended = [_alert(f"e{i:02}", AlertStatus.RESOLVED, ends_at=T0 + 50) for i in range(3)]
    _store(sql_backend, *firing, *ended, _alert("old", AlertStatus.RESOLVED, ends_at=T0 - 7200))
    reader = sql_backend.reader()
    try:
        pages = list(active_alert_pages(reader, now=T0 + 100, retention=3600, size=3))
        # The reader goes on serving ordinary reads once the paged read is done.
        assert reader.scalar("SELECT count(*) FROM alerts") == 11
    finally:
        reader.close()
    assert [len(p) for p in pages] == [3, 3, 1, 3]
    assert sorted(a.fingerprint for p in pages for a in p) == sorted(a.fingerprint for a in (*firing, *ended))
    assert _fields({a.fingerprint: a for p in pages for a in p}["f03"]) == alert_row(firing[3])


def test_a_paged_read_left_early_leaves_the_reader_usable(sql_backend: Backend) -> None:
    _store(sql_backend, *(_alert(f"f{i:02}") for i in range(5)))
    reader = sql_backend.reader()
    try:
        pages = reader.pages("SELECT fingerprint FROM alerts ORDER BY fingerprint", size=2)
        assert [r["fingerprint"] for r in next(pages)] == ["f00", "f01"]
        pages.close()
        assert [
            r["fingerprint"] for r in reader.rows("SELECT fingerprint FROM alerts WHERE fingerprint > ?", ("f03",))
        ] == ["f04"]
    finally:
        reader.close()


def test_the_api_reads_page_alerts_newest_first_and_filter_by_status(sql_backend: Backend) -> None:
    _store(
        sql_backend,
        _alert("b", starts_at=T0 + 2),
        _alert("a", starts_at=T0 + 2),
        _alert("c", AlertStatus.RESOLVED, starts_at=T0 + 1, ends_at=T0 + 3, incident_id=None),
        _alert("d", starts_at=T0),
    )
    reader = sql_backend.reader()
    try:
        assert [a["fingerprint"] for a in read_alerts(reader, None, 10, 0)] == ["a", "b", "c", "d"]
        assert [a["fingerprint"] for a in read_alerts(reader, None, 2, 1)] == ["b", "c"]
        assert [a["fingerprint"] for a in read_alerts(reader, "resolved", 10, 0)] == ["c"]
        one = read_alert(reader, "c")
        assert one is not None
        assert one == {
            "fingerprint": "c",
            "labels": {"alertname": "Down", "instance": "c", "note": 'q"uo\\te ☕'},
            "annotations": {"summary": "down"},
            "status": "resolved",
            "starts_at": "2027-01-15T08:00:01.000Z",
            "ends_at": "2027-01-15T08:00:03.000Z",
            "generator_url": "http://prom/graph",
            "sources": ["alertmanager", "prometheus"],
            "first_seen": "2027-01-15T08:00:00.000Z",
            "last_seen": "2027-01-15T08:00:05.000Z",
            "times_seen": 2,
            "state_changes": 1,
            "incident_id": None,
        }
        assert read_alert(reader, "zzz") is None
    finally:
        reader.close()


def test_stored_json_decodes_as_json_loads_would() -> None:
    values: tuple[Any, ...] = ({"a": "b", "é": 'q"\\'}, [], "x", 1.5, None, {"n": {"m": [1, 2]}})
    for value in values:
        assert row_value(row_json(value)) == value
    # Not written by row_json, still read as JSON, or refused as json.loads refuses it.
    assert row_value(' {"a": 1} ') == {"a": 1}
    for bad in ("", '{"a":', "[1] [2]"):
        with pytest.raises(json.JSONDecodeError):
            row_value(bad)
