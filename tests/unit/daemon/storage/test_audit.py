"""The audit trail's reads through a backend: the API's, and those the chain is started and checked with."""

from __future__ import annotations

import json

from daemon.storage import audit
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Backend, Dialect
from tests.unit.daemon.storage.backends_fixture import write


def _event(seq: int | None, at: float, record_id: str = "1", action: str = "note") -> tuple[object, ...]:
    after = json.dumps({"n": seq})
    return (seq, at, "alice", "incident", record_id, action, None, after, None if seq is None else f"mac{seq}")


def test_events_read_oldest_first_by_record(sql_backend: Backend) -> None:
    write(
        sql_backend,
        (audit.INSERT, _event(1, 10.0)),
        (audit.INSERT, _event(2, 11.0, record_id="2")),
        (audit.INSERT, _event(3, 12.0)),
    )
    sql = sql_backend.reader()
    try:
        found = audit.read_events(sql, "incident", "1", 10, 0)
        assert [(e["id"], e["at"], e["after"]) for e in found] == [
            (1, "1970-01-01T00:00:10.000Z", {"n": 1}),
            (3, "1970-01-01T00:00:12.000Z", {"n": 3}),
        ]
        assert [e["id"] for e in audit.read_events(sql, None, None, 1, 1)] == [2]
        assert audit.read_events(sql, "problem", None, 10, 0) == []
    finally:
        sql.close()


def test_the_chain_reads(sql_backend: Backend) -> None:
    sql = sql_backend.primary
    assert audit.newest_chained(sql) is None and audit.last_unchained_id(sql) is None
    write(sql_backend, (audit.INSERT, _event(None, 1.0)), (audit.INSERT, _event(None, 2.0)))
    write(sql_backend, (audit.INSERT, _event(1, 3.0, action="chain_started")), (audit.INSERT, _event(2, 4.0)))
    write(sql_backend, (audit.INSERT, _event(None, 5.0)))
    assert audit.event_count(sql) == 5
    assert audit.last_unchained_id(sql) == 5
    assert [r["at"] for r in audit.unchained(sql, 2)] == [1.0, 2.0]
    assert list(audit.unchained(sql, 2)[0]) == list(audit.UNCHAINED_COLUMNS)
    assert audit.unchained_ids_after(sql, 4) == [5]
    head = audit.newest_chained(sql)
    assert head is not None and (head["seq"], head["mac"]) == (2, "mac2")
    start = audit.chain_start(sql)
    assert start is not None and (start["id"], start["action"], start["after"]) == (3, "chain_started", '{"n": 1}')
    found = audit.event_of_seq(sql, 2)
    assert found is not None and (found["id"], found["mac"]) == (4, "mac2")
    assert audit.event_of_seq(sql, 3) is None
    assert audit.has_chain(sql)


def test_chained_events_come_in_chain_order_across_pages(sql_backend: Backend) -> None:
    count = 2 * 1000 + 7
    write(sql_backend, *((audit.INSERT, _event(seq, float(seq))) for seq in range(count, 0, -1)))
    sql = sql_backend.reader()
    try:
        with audit.snapshot(sql):
            seqs = [r["seq"] for r in audit.chained(sql, 5)]
    finally:
        sql.close()
    assert seqs == list(range(5, count + 1))


def test_a_snapshot_sees_one_state_while_the_daemon_writes(sql_backend: Backend) -> None:
    write(sql_backend, (audit.INSERT, _event(1, 1.0)))
    sql = sql_backend.reader()
    try:
        with audit.snapshot(sql):
            assert audit.event_count(sql) == 1
            write(sql_backend, (audit.INSERT, _event(2, 2.0)))
            assert audit.event_count(sql) == 1
        assert audit.event_count(sql) == 2
    finally:
        sql.close()


def test_the_append_only_triggers_are_found_as_created(sql_backend: Backend) -> None:
    sql = sql_backend.primary
    expected = audit.expected_triggers(sql.dialect)
    assert {"audit_events_append_only_update", "audit_events_append_only_delete"} <= set(expected)
    found = audit.trigger_sql(sql)
    assert {name: found.get(name) for name in expected} == expected
    assert audit.has_chain(sql)


def test_postgres_triggers_disarmed_without_being_dropped_are_told_apart(postgres_dsn: str) -> None:
    backend = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1)
    backend.open()
    try:
        sql = backend.reader(read_only=False)
        try:
            expected = audit.expected_triggers(Dialect.POSTGRES)
            sql.rows("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only_truncate")
            found = audit.trigger_sql(sql)
            assert found["audit_events_append_only_truncate"].endswith(" DISABLED")
            assert found["audit_events_append_only_update"] == expected["audit_events_append_only_update"]
            # Update and truncate call one function: a body that does nothing disarms both.
            sql.rows(
                "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RETURN NEW; END $$"
            )
            found = audit.trigger_sql(sql)
            assert all(
                found[name] != expected[name]
                for name in ("audit_events_append_only_update", "audit_events_append_only_truncate")
            )
            assert "RETURN NEW" in found["audit_events_append_only_update"]
            # Delete calls the guard that lets archived rows go (schema version 2): replaced, it is told too.
            assert found["audit_events_append_only_delete"] == expected["audit_events_append_only_delete"]
            sql.rows(
                "CREATE OR REPLACE FUNCTION audit_events_delete_archived() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RETURN OLD; END $$"
            )
            found = audit.trigger_sql(sql)
            assert "RETURN OLD; END $$" in found["audit_events_append_only_delete"]
            assert found["audit_events_append_only_delete"] != expected["audit_events_append_only_delete"]
        finally:
            sql.close()
    finally:
        backend.close()
