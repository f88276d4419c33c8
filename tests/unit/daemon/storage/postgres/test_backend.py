"""The PostgreSQL backend against the machine's PostgreSQL: a database of its own per test."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

from daemon.errors import Fenced, IncompatibleStore, StorageError, StoreUnavailable
from daemon.model import Alert, AlertStatus, Incident, IncidentStatus, Problem, ProblemStatus, Source, TimelineEntry
from daemon.storage import alerts as alert_records
from daemon.storage import audit as audit_store
from daemon.storage import changes as change_store
from daemon.storage import drills as drill_store
from daemon.storage import incidents as incident_store
from daemon.storage import problems as problem_store
from daemon.storage.database import Batch
from daemon.storage.postgres import schema
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Dialect

T0 = 1_800_000_000.25


@pytest.fixture
def backend(postgres_dsn: str) -> Iterator[PostgresBackend]:
    b = PostgresBackend(postgres_dsn, pool_min=1, pool_max=2, connect_timeout=5)
    b.open()
    yield b
    b.close()


def alert(n: int, *, status: AlertStatus = AlertStatus.FIRING, incident: int | None = None) -> Alert:
    return Alert(
        fingerprint=f"fp{n:05d}",
        labels={"alertname": "Down", "instance": f"h{n}", "odd": "50% 'quoted' ?", "raw": "tab\there\nnew \\N"},
        annotations={"summary": "it is down"},
        status=status,
        starts_at=T0 + n,
        ends_at=None if status is AlertStatus.FIRING else T0 + n + 60.5,
        generator_url="http://prom/graph?g0.expr=up%3D%3D0",
        sources=Source.ALERTMANAGER,
        first_seen=T0,
        last_seen=T0 + 1.5,
        times_seen=3,
        state_changes=1,
        expires_at=T0 + 900.125,
        incident_id=incident,
    )


def closed_port() -> int:
    """A port nothing listens on (bound once to find a free one, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def raw(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def test_open_migrates_a_new_database_and_reopening_keeps_rows(postgres_dsn: str) -> None:
    first = PostgresBackend(postgres_dsn, pool_min=1, pool_max=2, connect_timeout=5)
    first.open()
    batch = Batch()
    batch.alerts["fp00001"] = alert_records.alert_row(alert(1))
    first.write(batch)
    first.close()

    again = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1, connect_timeout=5)
    again.open()
    try:
        assert again.dialect is Dialect.POSTGRES
        reader = again.reader()
        try:
            assert reader.one("SELECT application, version FROM itsmd_schema") == {
                "application": "itsmd",
                "version": schema.LATEST,
            }
            assert reader.scalar("SELECT count(*) FROM alerts") == 1
            assert reader.one("SELECT epoch, holder FROM leader_lease WHERE id = 1") == {"epoch": 0, "holder": None}
        finally:
            reader.close()
    finally:
        again.close()


def test_a_database_of_another_program_is_refused_untouched(postgres_dsn: str) -> None:
    with raw(postgres_dsn) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    b = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1, connect_timeout=5)
    with pytest.raises(IncompatibleStore, match="foreign database, refusing to touch it"):
        b.open()
    with raw(postgres_dsn) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [("customers",)]


def test_a_database_of_a_newer_itsmd_is_refused(postgres_dsn: str) -> None:
    first = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1)
    first.open()
    first.close()
    with raw(postgres_dsn) as conn:
        conn.execute("UPDATE itsmd_schema SET version = %s", (schema.LATEST + 1,))
    with pytest.raises(IncompatibleStore, match=f"schema version {schema.LATEST + 1}, newer than this itsmd"):
        PostgresBackend(postgres_dsn, pool_min=0, pool_max=1).open()


def test_two_replicas_opening_at_once_migrate_once(postgres_dsn: str) -> None:
    backends = [PostgresBackend(postgres_dsn, pool_min=0, pool_max=1) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def open_one(b: PostgresBackend) -> None:
        start.wait()
        try:
            b.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for b in backends:
        b.close()
    assert errors == []
    with raw(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM leader_lease").fetchone() == (1,)
        assert conn.execute("SELECT version FROM itsmd_schema").fetchone() == (schema.LATEST,)


def test_unreachable_server_is_a_storage_error_naming_it_without_the_password() -> None:
    port = closed_port()
    b = PostgresBackend(f"host=127.0.0.1 port={port} dbname=itsmd user=itsmd password=hunter2secret", connect_timeout=2)
    with pytest.raises(StorageError) as caught:
        b.open()
    message = str(caught.value)
    assert f"postgresql://itsmd@127.0.0.1:{port}/itsmd" in message
    assert "refused" in message.lower()
    assert "hunter2secret" not in message
    assert "\n" not in message


def test_every_kind_of_batch_row_is_written_and_read_back(backend: PostgresBackend) -> None:
    incident = Incident(id=7, key="k", service="web", title="web down", status=IncidentStatus.OPEN, opened_at=T0)
    problem = Problem(
        id=3,
        signature="sig",
        service="web",
        title="web flaps",
        status=ProblemStatus.CONFIRMED,
        opened_at=T0,
        updated_at=T0,
    )
    change_columns = len(change_store.COLUMNS.split(","))
    change: tuple[object, ...] = (
        11,
        5,
        "restart",
        "1",
        "execute",
        "standard",
        "low",
        "web",
        7,
        "alice",
        "manual",
        "succeeded",
        None,
    )
    change += ("because 100% sure", T0, T0 + 1, T0 + 2, None)
    assert len(change) == change_columns
    drill = (21, "failover", "web", "manual", "bob", "passed", "", None, T0, T0 + 5, 4.5, 60.0, None, None)

    batch = Batch()
    batch.alerts["fp00001"] = alert_records.alert_row(alert(1, incident=7))
    batch.alerts["fp00002"] = alert_records.alert_row(alert(2, status=AlertStatus.RESOLVED))
    batch.counters[("itsmd_alerts_received_total", '{"source":"alertmanager"}')] = 12.0
    batch.upsert(incident_store.INCIDENT, 7, incident_store.incident_row(incident))
    batch.append(incident_store.TIMELINE, incident_store.timeline_row(TimelineEntry(7, T0, "opened", {"why": "?"})))
    batch.upsert(problem_store.UPSERT, 3, problem_store.problem_row(problem))
    batch.append(problem_store.LINK, (3, 7, T0))
    batch.append(problem_store.LINK, (3, 7, T0))  # ON CONFLICT DO NOTHING: once
    batch.upsert(change_store.UPSERT, 11, change)
    batch.append(change_store.EVENT, change_store.event_row(11, T0, "started", {"step": 1}))
    batch.append(change_store.LINK, (11, 7, T0, "suspect"))
    batch.upsert(drill_store.UPSERT, 21, drill)
    batch.append(audit_store.INSERT, (1, T0, "alice", "incident", "7", "opened", None, '{"status":"open"}', "mac1"))
    backend.write(batch)

    # The next batch changes full rows, touches one alert, and moves a counter.
    later = Batch()
    later.alert_touches["fp00002"] = alert_records.alert_touch_row(
        dataclasses.replace(alert(2, status=AlertStatus.RESOLVED), last_seen=T0 + 99.5, times_seen=8)
    )
    later.counters[("itsmd_alerts_received_total", '{"source":"alertmanager"}')] = 13.0
    incident.status = IncidentStatus.RESOLVED
    incident.resolved_at = T0 + 50
    later.upsert(incident_store.INCIDENT, 7, incident_store.incident_row(incident))
    backend.write(later)

    r = backend.reader()
    try:
        found = r.rows(f"SELECT {alert_records.ALERT_COLUMNS} FROM alerts ORDER BY fingerprint")  # noqa: S608
        got = {a["fingerprint"]: a for a in found}
        # Alert compares by identity: compare its row form, which every field goes into.
        assert alert_records.alert_row(alert_records.alert_from_row(got["fp00001"])) == alert_records.alert_row(
            alert(1, incident=7)
        )
        touched = got["fp00002"]
        assert (touched["last_seen"], touched["times_seen"]) == (T0 + 99.5, 8)
        assert json.loads(touched["labels"])["odd"] == "50% 'quoted' ?"
        assert r.scalar("SELECT value FROM counters") == 13.0
        assert r.one("SELECT status, resolved_at, opened_at FROM incidents WHERE id = 7") == {
            "status": "resolved",
            "resolved_at": T0 + 50,
            "opened_at": T0,
        }
        assert r.rows("SELECT incident_id, kind, detail FROM timeline") == [
            {"incident_id": 7, "kind": "opened", "detail": '{"why":"?"}'}
        ]
        assert r.scalar("SELECT title FROM problems WHERE id = ?", (3,)) == "web flaps"
        assert r.rows("SELECT problem_id, incident_id FROM problem_incidents") == [{"problem_id": 3, "incident_id": 7}]
        assert r.scalar("SELECT reason FROM changes WHERE id = 11") == "because 100% sure"
        assert r.scalar("SELECT kind FROM change_events WHERE change_id = 11") == "started"
        assert r.scalar("SELECT reason FROM change_incidents") == "suspect"
        assert r.scalar("SELECT recovery_seconds FROM drill_runs WHERE id = 21") == 4.5
        assert r.one("SELECT seq, actor, mac FROM audit_events") == {"seq": 1, "actor": "alice", "mac": "mac1"}
        assert r.scalar("SELECT count(*) FROM alerts WHERE labels LIKE '%50\\%%' ESCAPE '\\'") == 2
    finally:
        r.close()


def test_audit_events_stay_append_only(backend: PostgresBackend) -> None:
    batch = Batch()
    batch.append(audit_store.INSERT, (1, T0, "alice", "incident", "7", "opened", None, None, "mac"))
    backend.write(batch)
    r = backend.reader(read_only=False)
    try:
        for sql in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
            with pytest.raises(StorageError, match="audit events are append-only"):
                r.rows(sql)
        assert r.scalar("SELECT actor FROM audit_events") == "alice"
    finally:
        r.close()


def test_readers_cannot_write_unless_asked(backend: PostgresBackend) -> None:
    r = backend.reader()
    try:
        with pytest.raises(StorageError, match="read-only"):
            r.rows("INSERT INTO counters (name, labels, value) VALUES ('a', '{}', 1)")
    finally:
        r.close()


def test_a_fenced_write_raises_and_writes_nothing(backend: PostgresBackend, postgres_dsn: str) -> None:
    with raw(postgres_dsn) as conn:
        conn.execute("UPDATE leader_lease SET epoch = 5, holder = 'replica-a'")
    backend.fence_epoch = 5
    ok = Batch()
    ok.alerts["fp00001"] = alert_records.alert_row(alert(1))
    backend.write(ok)

    with raw(postgres_dsn) as conn:
        conn.execute("UPDATE leader_lease SET epoch = 6, holder = 'replica-b'")
    fenced = Batch()
    fenced.alerts["fp00002"] = alert_records.alert_row(alert(2))
    fenced.counters[("c", "{}")] = 1.0
    fenced.append(audit_store.INSERT, (1, T0, "alice", "incident", "7", "opened", None, None, "mac"))
    with pytest.raises(Fenced, match="epoch is 6, this replica writes under 5"):
        backend.write(fenced)

    r = backend.reader()
    try:
        assert r.rows("SELECT fingerprint FROM alerts") == [{"fingerprint": "fp00001"}]
        assert r.scalar("SELECT count(*) FROM counters") == 0
        assert r.scalar("SELECT count(*) FROM audit_events") == 0
    finally:
        r.close()
    backend.fence_epoch = None  # a single node again: no check
    backend.write(fenced)


def test_the_writer_reconnects_after_its_session_is_terminated(backend: PostgresBackend, postgres_dsn: str) -> None:
    first = Batch()
    first.alerts["fp00001"] = alert_records.alert_row(alert(1))
    backend.write(first)
    pid = backend.primary.scalar("SELECT pg_backend_pid()")
    with raw(postgres_dsn) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)

    second = Batch()
    second.alerts["fp00002"] = alert_records.alert_row(alert(2))
    backend.write(second)  # the dead session is found at BEGIN: nothing was sent, so it reconnects and writes

    assert backend.primary.scalar("SELECT pg_backend_pid()") != pid
    assert backend.primary.scalar("SELECT count(*) FROM alerts") == 2


def test_a_write_while_the_server_is_unreachable_is_store_unavailable(postgres_dsn: str) -> None:
    b = PostgresBackend(postgres_dsn, pool_min=0, pool_max=1, connect_timeout=2)
    b.open()
    try:
        pid = b.primary.scalar("SELECT pg_backend_pid()")
        # Terminated, and no new connection allowed: the database refuses them while connections are off.
        with raw(postgres_dsn) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        name = psycopg.conninfo.conninfo_to_dict(postgres_dsn)["dbname"]
        with raw(_admin_dsn(postgres_dsn)) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        batch = Batch()
        batch.alerts["fp00001"] = alert_records.alert_row(alert(1))
        try:
            with pytest.raises(StoreUnavailable) as caught:
                b.write(batch)
            assert "\n" not in str(caught.value)
        finally:
            with raw(_admin_dsn(postgres_dsn)) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        b.write(batch)  # the writer's retry of the kept batch, once the server takes connections again
        assert b.primary.scalar("SELECT count(*) FROM alerts") == 1
    finally:
        b.close()


def _admin_dsn(dsn: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = "postgres"
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
