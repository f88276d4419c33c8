from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.app import StoredAlerts
from daemon.model import Alert, AlertStatus, Source
from daemon.storage.alerts import alert_row
from daemon.storage.database import Batch, Database


def test_stored_alerts_read_back_and_a_failed_read_starts_them_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(tmp_path / "itsmd.db")
    db.open()
    stored = StoredAlerts(db)
    try:
        alert = Alert("fp", {"alertname": "A"}, {}, AlertStatus.RESOLVED, 1.0, 2.0, "", Source.ALERTMANAGER, 1.0, 2.0)
        batch = Batch()
        batch.alerts["fp"] = alert_row(alert)
        db.write(batch)
        assert alert_row(stored(["fp", "other"])["fp"]) == alert_row(alert)
        db.conn.execute("ALTER TABLE alerts RENAME TO alerts_gone")
        with caplog.at_level(logging.WARNING, logger="daemon.app"):
            assert stored(["fp"]) == {}
        assert "could not read 1 stored alerts" in caplog.text
    finally:
        stored.close()
        db.close()
