"""A NUL in text from outside (alert fields, titles made of labels, command output) is written on both
backends: PostgreSQL's text cannot hold one, and a refused row would fail its whole batch on every retry."""

from __future__ import annotations

from daemon.model import Alert, AlertStatus, Incident, IncidentStatus, Source
from daemon.storage.alerts import alert_row, load_alert
from daemon.storage.database import Batch
from daemon.storage.incidents import INCIDENT, incident_row
from daemon.storage.postgres.sql import NUL_STANDIN
from daemon.storage.sql import Backend, Dialect

T0 = 1_800_000_000.0


def test_text_with_nul_is_written_and_found_by_it(sql_backend: Backend) -> None:
    url = "http://prom/graph?g0.expr=up\x00"
    alert = Alert("a1", {"alertname": "Down\x00"}, {}, AlertStatus.FIRING, T0, None, url, Source.ALERTMANAGER, T0, T0)
    incident = Incident(id=1, key="k", service="web", title="web\x00down", status=IncidentStatus.OPEN, opened_at=T0)
    batch = Batch()
    batch.alerts["a1"] = alert_row(alert)  # PostgreSQL: by COPY
    batch.upsert(INCIDENT, 1, incident_row(incident))  # PostgreSQL: bound parameters
    sql_backend.write(batch)

    sqlite = sql_backend.dialect is Dialect.SQLITE
    nul = "\x00" if sqlite else NUL_STANDIN
    stored = load_alert(sql_backend.primary, "a1")
    assert stored is not None
    # SQLite's alert rows go in through json_each, whose ->> ends text at a NUL.
    assert stored.generator_url == ("http://prom/graph?g0.expr=up" if sqlite else f"http://prom/graph?g0.expr=up{nul}")
    assert stored.labels == {"alertname": "Down\x00"}  # JSON escapes it: no stand-in needed
    reader = sql_backend.reader()
    try:
        assert reader.scalar("SELECT title FROM incidents WHERE id = 1") == f"web{nul}down"
        assert reader.scalar("SELECT id FROM incidents WHERE title = ?", ("web\x00down",)) == 1
    finally:
        reader.close()
