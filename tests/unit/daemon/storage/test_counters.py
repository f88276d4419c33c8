from __future__ import annotations

from daemon.storage.counters import load_counters
from daemon.storage.database import Batch
from daemon.storage.sql import Backend


def test_counters_load_as_written_and_a_newer_value_replaces_the_older(sql_backend: Backend) -> None:
    assert load_counters(sql_backend.primary) == {}
    first = Batch()
    first.counters[("itsmd_alerts_received_total", '{"source":"alertmanager"}')] = 3.0
    first.counters[("itsmd_incidents_opened_total", "{}")] = 1.0
    sql_backend.write(first)
    later = Batch()
    later.counters[("itsmd_alerts_received_total", '{"source":"alertmanager"}')] = 7.5
    sql_backend.write(later)
    reader = sql_backend.reader()
    try:
        assert load_counters(reader) == {
            ("itsmd_alerts_received_total", '{"source":"alertmanager"}'): 7.5,
            ("itsmd_incidents_opened_total", "{}"): 1.0,
        }
    finally:
        reader.close()
