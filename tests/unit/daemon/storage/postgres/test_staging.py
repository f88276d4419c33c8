"""Rows written by COPY through a staging table end up exactly as executemany leaves them."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from daemon.model import Incident, IncidentStatus, Problem, ProblemStatus
from daemon.storage import audit as audit_store
from daemon.storage import changes as change_store
from daemon.storage import incidents as incident_store
from daemon.storage import problems as problem_store
from daemon.storage import runs as run_store
from daemon.storage.audit_cuts import RECORD_CUT
from daemon.storage.database import Batch
from daemon.storage.postgres import staging
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.rollups import FREEZE_MONTH
from tests.postgres import create_database, drop_database

T0 = 1_800_000_000.5


def test_the_many_row_statements_are_staged() -> None:
    for statement in (
        incident_store.TIMELINE,
        incident_store.LINK,
        incident_store.INCIDENT,
        audit_store.INSERT,
        change_store.EVENT,
        problem_store.LINK,
        run_store.UPSERT_STEP,
        FREEZE_MONTH,
    ):
        assert staging.staged(statement.sql) is not None, statement.sql


def test_other_shapes_are_left_to_executemany() -> None:
    assert staging.staged(RECORD_CUT.sql) is None  # INSERT ... SELECT ... WHERE, parameters outside VALUES
    assert staging.staged("DELETE FROM outbox WHERE updated_at < ?") is None
    assert staging.staged("INSERT INTO t (a, b) VALUES (?, lower(?))") is None
    assert staging.staged("INSERT INTO t (a) VALUES (?) ON CONFLICT DO UPDATE SET a = excluded.a") is None
    assert staging.staged("INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (c) DO UPDATE SET b = excluded.b") is None


def test_an_upsert_is_staged_only_when_its_conflict_keys_are_distinct() -> None:
    plan = staging.staged(incident_store.LINK.sql)
    assert plan is not None
    assert plan.unique_keys([(1, "a", T0, T0, None), (1, "a", T0 + 1, T0, None), (2, "a", T0, T0, None)])
    assert not plan.unique_keys([(1, "a", T0, T0, None), (1, "a", T0, T0 + 5, T0 + 9)])
    timeline = staging.staged(incident_store.TIMELINE.sql)
    assert timeline is not None and timeline.unique_keys([(1, T0, "k", "{}")] * 2)  # no conflict clause
    assert plan.insert.endswith(
        "ON CONFLICT (incident_id, fingerprint, starts_at) DO UPDATE SET ended_at = excluded.ended_at"
    )


def _batch(k: int) -> Batch:
    """Enough rows of each kind to be staged, with what could go wrong in them: rows of one conflict key
    twice (the later must win), a DO NOTHING duplicate, text with NUL, %, quotes and tabs, NULLs."""
    batch = Batch()
    incident = incident_store.INCIDENT
    for i in range(1, 41):
        row = list(incident_store.incident_row(_incident(i)))
        batch.upsert(incident, i, tuple(row))
    problem = Problem(5, "sig", "web", "web flaps", ProblemStatus.CONFIRMED, opened_at=T0, updated_at=T0)
    batch.upsert(problem_store.UPSERT, 5, problem_store.problem_row(problem))
    for n in range(60):
        batch.append(
            incident_store.TIMELINE,
            (1 + n % 3, T0 + n, "alert_firing", f'{{"n":{n},"odd":"50% \\t \'q\' \\u0000"}}'),
        )
        # Upserts keyed by record, as the correlator writes them; and once (below) two rows of one key.
        batch.upsert(incident_store.LINK, (1, n), (1, f"fp{n:03d}", T0, T0 + n, None if n < 30 else T0 + 100 + n))
        batch.append(problem_store.LINK, (5, 1 + n % 20, T0))
    if k == 1:  # the second row of a key updates only ended_at: this batch goes by executemany
        batch.append(incident_store.LINK, (1, "fp000", T0, T0 + 999, T0 + 1000))
    for seq in range(30 * k + 1, 30 * k + 31):
        batch.append(audit_store.INSERT, (seq, T0 + seq, "alice", "incident", "1", "noted", None, "{}", f"m{seq}"))
    return batch


def _incident(i: int) -> Incident:
    return Incident(
        id=i, key=f"k{i}", service="web", title=f"web\x00down {i}", status=IncidentStatus.OPEN, opened_at=T0
    )


_TABLES = {
    "incidents": "SELECT id, key, title, status FROM incidents ORDER BY id",
    "timeline": "SELECT id, incident_id, at, kind, detail FROM timeline ORDER BY id",
    "incident_alerts": "SELECT * FROM incident_alerts ORDER BY incident_id, fingerprint, starts_at",
    "problem_incidents": "SELECT * FROM problem_incidents ORDER BY problem_id, incident_id",
    "audit_events": "SELECT id, seq, mac FROM audit_events ORDER BY id",
}


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    first, first_dsn = create_database()
    second, second_dsn = create_database()
    try:
        yield first_dsn, second_dsn
    finally:
        drop_database(first)
        drop_database(second)


def _written(dsn: str, batches: list[Batch], *, stages: int) -> dict[str, list[tuple[object, ...]]]:
    backend = PostgresBackend(dsn, pool_min=1, pool_max=1)
    backend.open()
    try:
        for batch in batches:
            backend.write(batch)
        assert len(backend._stages) == stages  # the road taken
    finally:
        backend.close()
    with psycopg.connect(dsn) as conn:
        return {table: conn.execute(sql).fetchall() for table, sql in _TABLES.items()}


def test_staged_rows_are_the_rows_executemany_writes(
    two_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    staged_dsn, plain_dsn = two_databases
    # incidents, timeline, incident_alerts, problem_incidents, audit_events (problems: one row)
    staged = _written(staged_dsn, [_batch(0), _batch(1)], stages=5)
    monkeypatch.setattr(staging, "MIN_ROWS", 10**9)
    plain = _written(plain_dsn, [_batch(0), _batch(1)], stages=0)
    assert staged == plain
    assert len(staged["timeline"]) == 120
    assert [row[1] for row in staged["audit_events"]] == list(range(1, 61))
    links = {row[1]: row for row in staged["incident_alerts"]}
    assert links["fp000"][3:] == (T0, T0 + 1000)  # attached at the first row's time, ended at the later's
    assert links["fp045"][3:] == (T0 + 45, T0 + 145)
    assert len(staged["problem_incidents"]) == 20
    assert "\ufffd" in str(staged["incidents"][0][2])  # NUL arrives as U+FFFD, as through executemany
