"""Disk-only alerts are found again, and the filter in front of them never hides one."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.alerts.stored import Fingerprints, StoredAlerts
from daemon.model import Alert, AlertStatus, Source
from daemon.storage.alerts import alert_row
from daemon.storage.database import Batch, Database
from daemon.storage.sql import Backend
from tests.postgres import backend_for_test


def _fp(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def _alert(fp: str) -> Alert:
    return Alert(fp, {"alertname": "A", "n": fp}, {}, AlertStatus.RESOLVED, 1.0, 2.0, "", Source.ALERTMANAGER, 1.0, 2.0)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    db = backend_for_test(tmp_path)
    db.open()
    yield db
    db.close()


def _store(backend: Backend, fps: list[str]) -> None:
    batch = Batch()
    for fp in fps:
        batch.alerts[fp] = alert_row(_alert(fp))
    backend.write(batch)


def test_the_filter_holds_every_fingerprint_added_and_few_others() -> None:
    rng = random.Random(7)  # noqa: S311 (test data, not secrets)
    f = Fingerprints(10_000)
    added = [_fp(rng) for _ in range(f.planned)]
    for fp in added:
        f.add(fp)
    assert all(fp in f for fp in added)
    others = sum(_fp(rng) in f for _ in range(20_000))
    assert others < 20_000 * 0.005  # about 0.05 % at the planned size
    assert "not-hex" in f  # not a fingerprint it can hash: "maybe", so the store is read


def test_a_read_back_alert_is_the_stored_one_and_a_failed_read_starts_it_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    stored = StoredAlerts(db)
    try:
        _store(db, ["00000000000000f0"])
        assert alert_row(stored(["00000000000000f0", "other"])["00000000000000f0"]) == alert_row(
            _alert("00000000000000f0")
        )
        db.conn.execute("ALTER TABLE alerts RENAME TO alerts_gone")
        with caplog.at_level(logging.WARNING, logger="daemon.alerts.stored"):
            assert stored(["00000000000000f0"]) == {}
        assert "could not read 1 stored alerts" in caplog.text
    finally:
        stored.close()
        db.close()


async def test_after_the_scan_new_alerts_read_nothing_and_stored_ones_are_still_found(backend: Backend) -> None:
    rng = random.Random(1)  # noqa: S311 (test data, not secrets)
    on_disk = [_fp(rng) for _ in range(25_000)]  # more than one page of the scan
    _store(backend, on_disk)
    stored = StoredAlerts(backend)
    try:
        assert stored([_fp(rng)]) == {}
        assert stored.reads == 1  # no filter yet: every unknown fingerprint asks the store
        await stored.build()
        assert stored.ready
        for _ in range(200):
            assert stored([_fp(rng) for _ in range(10)]) == {}
        assert stored.reads <= 2  # a false positive may read once
        before = stored.reads
        found = stored([on_disk[0], on_disk[-1], _fp(rng)])
        assert set(found) == {on_disk[0], on_disk[-1]}
        assert stored.reads == before + 1
    finally:
        stored.close()


async def test_an_alert_that_leaves_memory_during_the_scan_is_in_the_new_filter(backend: Backend) -> None:
    started, proceed = threading.Event(), threading.Event()

    class Slow(StoredAlerts):
        def _scan(self) -> Fingerprints:
            started.set()
            proceed.wait(10)
            return super()._scan()

    stored = Slow(backend)
    try:
        build = asyncio.create_task(stored.build())
        await asyncio.to_thread(started.wait, 10)
        # Written and forgotten while the scan runs (it may or may not see the row): the filter must hold it.
        _store(backend, ["00000000000000aa"])
        stored.left_memory(["00000000000000aa"])
        proceed.set()
        await build
        assert "00000000000000aa" in stored(["00000000000000aa"])
    finally:
        stored.close()


async def test_alerts_that_left_memory_after_the_scan_are_found(backend: Backend) -> None:
    stored = StoredAlerts(backend)
    try:
        await stored.build()
        _store(backend, ["00000000000000bb"])
        assert stored(["00000000000000bb"]) == {}  # in memory still, as far as the filter knows
        stored.left_memory(["00000000000000bb"])
        assert "00000000000000bb" in stored(["00000000000000bb"])
    finally:
        stored.close()


async def test_a_filter_past_its_planned_size_asks_for_a_rebuild(backend: Backend) -> None:
    stored = StoredAlerts(backend)
    try:
        assert not stored.maintain()  # nothing to rebuild before the first scan
        await stored.build()
        assert not stored.maintain()
        rng = random.Random(3)  # noqa: S311 (test data, not secrets)
        stored.left_memory(_fp(rng) for _ in range(70_000))  # the empty store's filter plans for 65,536
        assert stored.maintain()
        await stored.build()
        assert not stored.maintain()
    finally:
        stored.close()
