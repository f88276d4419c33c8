"""The archive's SQL: cuts recorded only when none came in between, deletes only of what a cut covers."""

from __future__ import annotations

import json

import pytest

from daemon.errors import StorageError
from daemon.storage import audit, audit_cuts
from daemon.storage.reading import DRIVER_ERRORS
from daemon.storage.sql import Backend, has_table
from tests.unit.daemon.storage.backends_fixture import write


def _events(backend: Backend, count: int) -> None:
    write(
        backend,
        *(
            (audit.INSERT, (seq, float(seq), "alice", "incident", "1", "note", None, json.dumps({}), f"mac{seq}"))
            for seq in range(1, count + 1)
        ),
    )


def _cut(through: int, after_id: int) -> tuple[object, ...]:
    return (through, f"mac{through}", through, 100.0, through - after_id, "sha", "cutmac", after_id)


def test_a_cut_then_its_events_deleted_and_only_those(sql_backend: Backend) -> None:
    _events(sql_backend, 10)
    sql = sql_backend.primary
    found = audit_cuts.newest_before(sql, 5.5, below_seq=10, after_id=0)
    assert found is not None and (found["id"], found["seq"], found["mac"]) == (5, 5, "mac5")
    assert [r["seq"] for r in audit_cuts.events_between(sql, 0, 5)] == [1, 2, 3, 4, 5]
    write(sql_backend, (audit_cuts.RECORD_CUT, _cut(5, 0)), (audit_cuts.DELETE_ARCHIVED, (0, 5)))
    assert [r["through_seq"] for r in audit_cuts.cuts(sql)] == [5]
    assert list(audit_cuts.cuts(sql)[0]) == list(audit_cuts.CUT_COLUMNS)
    assert audit.event_count(sql) == 5
    # The head is never archived: nothing below seq 10 after the cut but 6..9.
    assert audit_cuts.newest_before(sql, 100.0, below_seq=10, after_id=5) is not None
    assert audit_cuts.newest_before(sql, 5.5, below_seq=10, after_id=5) is None


def test_a_cut_from_a_stale_read_records_nothing_and_deletes_nothing(sql_backend: Backend) -> None:
    _events(sql_backend, 10)
    write(sql_backend, (audit_cuts.RECORD_CUT, _cut(3, 0)), (audit_cuts.DELETE_ARCHIVED, (0, 3)))
    # Another archive read the store before that cut: its insert finds a newer cut and writes nothing, and the
    # trigger refuses the delete of events no cut covers, so the whole batch fails.
    with pytest.raises((StorageError, *DRIVER_ERRORS), match="append-only"):
        write(sql_backend, (audit_cuts.RECORD_CUT, _cut(6, 0)), (audit_cuts.DELETE_ARCHIVED, (0, 6)))
    sql = sql_backend.primary
    assert [r["through_seq"] for r in audit_cuts.cuts(sql)] == [3]
    assert audit.event_count(sql) == 7


def test_the_tables_a_read_of_an_older_store_may_miss(sql_backend: Backend) -> None:
    sql = sql_backend.primary
    assert has_table(sql, "audit_cuts") and has_table(sql, "report_months")
    assert not has_table(sql, "no_such_table")
    assert audit_cuts.cuts(sql) == []


def test_the_append_only_triggers_of_the_cuts_are_found_as_created(sql_backend: Backend) -> None:
    sql = sql_backend.primary
    expected = audit_cuts.expected_cut_triggers(sql.dialect)
    assert {"audit_cuts_append_only_update", "audit_cuts_append_only_delete"} <= set(expected)
    found = audit.trigger_sql(sql, "audit_cuts")
    assert {name: found.get(name) for name in expected} == expected
    # And the delete trigger of the events is the one that lets archived rows go.
    events = audit.trigger_sql(sql)
    assert (
        events["audit_events_append_only_delete"]
        == audit.expected_triggers(sql.dialect)["audit_events_append_only_delete"]
    )
    assert "audit_cuts" in events["audit_events_append_only_delete"]
