"""The leader applies the followers' inbox in order, its cursor committed with the alerts, so a crash re-applies
and never skips."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from daemon.clock import ManualClock
from daemon.config import IngestConfig
from daemon.pipeline import Pipeline
from daemon.replica import kinds
from daemon.replica.inbox import CURSOR, InboxConsumer
from daemon.storage import inbox
from daemon.storage.alerts import load_active_alerts
from daemon.storage.counters import load_counters
from tests.postgres import create_database, drop_database
from tests.unit.daemon.ingest.conftest import capture, eventually, running, series
from tests.unit.daemon.records import Stack
from tests.unit.daemon.replica.conftest import Me, follower, inbox_rows, set_leader, sql

T0 = 1_800_000_000.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def posted(name: str, *, resolved: bool = False) -> str:
    alert: dict[str, Any] = {"labels": {"alertname": name, "service": "api", "instance": "a"}}
    if resolved:
        alert["endsAt"] = _iso(T0 - 10)
    return json.dumps([alert])


def store(dsn: str, *bodies: str) -> None:
    """Rows as a follower commits them."""
    for body in bodies:
        sql(
            dsn,
            "INSERT INTO inbox (received_at, replica, kind, body, principal, source) VALUES (%s, %s, %s, %s, %s, %s)",
            (T0, "follower-b", kinds.V2, body, None, "prometheus"),
        )


class Leader:
    """The leader's stages on an SQLite file in `folder`, loaded as a starting daemon loads them."""

    def __init__(self, folder: Path, dsn: str) -> None:
        self.stack = s = Stack(folder)
        s.counters.restore(load_counters(s.db.primary))
        s.table.restore(load_active_alerts(s.db.primary, now=T0, retention=86400.0), T0)
        pipeline = Pipeline(s.table, s.correlator, s.writer, s.counters, ManualClock(T0), commit_timeout=5)
        self.consumer_pipeline = pipeline
        self.consumer = InboxConsumer(dsn, pipeline, IngestConfig(), batch=2)
        self._writer: asyncio.Task[None] | None = None

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self.stack.writer.run())

    async def stop_writer(self) -> None:
        assert self._writer is not None
        self.stack.writer.close()
        await self._writer
        self._writer = None

    async def step(self) -> int:
        """One step that applies something. Rows wait while any writing transaction older than theirs is open
        on the (shared) cluster, so a step may first find nothing readable."""
        seqs: list[int] = []

        async def applied() -> bool:
            seqs.append(await self.consumer.step())
            return seqs[-1] > 0

        await eventually(applied)
        return seqs[-1]

    async def catch_up(self) -> None:
        """Apply everything stored, waiting for each batch to commit, until no committed row is left after the
        cursor (deleting what the committed cursor covers on the way)."""

        async def drained() -> bool:
            while seq := await self.consumer.step():
                await self.consumer.durable(seq)
            await self.consumer.housekeeping()
            return self.consumer.pending == 0

        await eventually(drained)

    def alerts(self) -> dict[str, str]:
        rows = self.stack.db.conn.execute("SELECT labels, status FROM alerts").fetchall()
        return {json.loads(labels)["alertname"]: status for labels, status in rows}

    def stored_cursor(self) -> float | None:
        row = self.stack.db.conn.execute("SELECT value FROM counters WHERE name = ?", (CURSOR,)).fetchone()
        return None if row is None else float(row[0])

    async def close(self) -> None:
        if self._writer is not None:
            await self.stop_writer()
        await self.consumer.close()
        self.stack.close()


async def test_applied_in_order_and_a_crash_before_the_commit_reapplies(tmp_path: Path, store_dsn: str) -> None:
    store(store_dsn, posted("A"), posted("B"), posted("A", resolved=True))

    # Leader 1 applies all three in memory, then dies before its writer commits anything.
    first = Leader(tmp_path, store_dsn)
    assert await first.step() > 0
    assert await first.step() > 0
    assert first.consumer.cursor.seq == 3
    assert first.alerts() == {}
    assert first.stored_cursor() is None
    await first.close()

    # Leader 2 starts from the stored cursor (none): all three again, in seq order (A ends resolved).
    second = Leader(tmp_path, store_dsn)
    assert second.consumer.cursor == inbox.START
    second.start_writer()
    await second.catch_up()
    assert second.alerts() == {"A": "resolved", "B": "firing"}
    assert second.stored_cursor() == 3
    assert second.consumer.committed == second.consumer.cursor
    assert second.consumer.cursor.seq == 3
    # Committed and covered by the cursor: the rows go.
    await second.consumer.housekeeping()
    assert inbox_rows(store_dsn) == []
    assert second.consumer.pending == 0

    # A fourth row is applied, then leader 2 dies before that commit: leader 3 applies only that one again.
    store(store_dsn, posted("B", resolved=True))
    await second.stop_writer()
    assert await second.step() > 0
    assert second.consumer.cursor.seq == 4
    await second.close()

    third = Leader(tmp_path, store_dsn)
    assert third.consumer.cursor.seq == 3
    assert third.alerts() == {"A": "resolved", "B": "firing"}
    third.start_writer()
    await third.catch_up()
    assert third.alerts() == {"A": "resolved", "B": "resolved"}
    assert third.stored_cursor() == 4
    assert await third.consumer.step() == 0  # nothing left: nothing applied twice
    await third.close()


async def test_a_body_stored_twice_is_one_alert(tmp_path: Path, store_dsn: str) -> None:
    # A follower whose commit answer was lost answers 503; the sender's retry stores the same body again.
    store(store_dsn, posted("A"), posted("A"))
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    await leader.catch_up()
    assert leader.alerts() == {"A": "firing"}
    assert leader.stack.db.conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1
    await leader.close()


async def test_a_body_the_leader_refuses_is_counted_and_passed(tmp_path: Path, store_dsn: str) -> None:
    store(store_dsn, '[{"labels": {}}]', posted("B"))
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    await leader.catch_up()
    assert leader.alerts() == {"B": "firing"}
    assert leader.consumer.refused == 1
    assert leader.stack.counters.get("itsmd_alerts_rejected_total", (("reason", "invalid_labels"),)) == 1
    await leader.close()


async def test_a_notice_wakes_the_consumer_without_polling(tmp_path: Path, store_dsn: str) -> None:
    leader = Leader(tmp_path, store_dsn)
    consumer = InboxConsumer(store_dsn, leader.consumer_pipeline, IngestConfig(), poll_interval=3600.0)
    leader.start_writer()
    task = asyncio.create_task(consumer.run())

    async def listening() -> bool:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s"
        return bool(sql(store_dsn, query, ("LISTEN itsmd_inbox",))[0][0])

    try:
        # Once it listens, only a notice can wake it before the hour-long poll.
        await eventually(listening)
        for name in ("A", "B"):
            async with await psycopg.AsyncConnection.connect(store_dsn, autocommit=True) as conn:
                await inbox.insert(conn, [inbox.Received(T0, "follower-b", kinds.V2, posted(name), None, None)])

            async def applied(name: str = name) -> bool:
                return name in leader.alerts()

            await eventually(applied)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await leader.close()


async def test_a_follower_s_alerts_reach_the_itsmd_leader(
    config_path: Path, tmp_path: Path, store_dsn: str, clock: ManualClock
) -> None:
    async with running(config_path, tmp_path / "leader", clock, inbox_dsn=store_dsn) as leader:
        set_leader(store_dsn, "leader-a", str(leader.client.make_url("/")))
        async with follower(config_path, tmp_path / "follower", store_dsn, Me("follower-b", "http://b")) as f:
            status, answer, _ = await f.post(
                "/webhook/alertmanager", capture("am_webhook_firing_grouped_checkout_3_alerts.json")
            )
            assert (status, answer["accepted"]) == (200, 3)

            async def applied() -> bool:
                return len(await leader.alerts()) == 3

            await eventually(applied)  # woken by the follower's NOTIFY (or the 1 s poll)

            async def drained() -> bool:
                metrics = await leader.metrics()
                return inbox_rows(store_dsn) == [] and metrics[series("itsmd_inbox_pending")] == 0

            await eventually(drained)
            metrics = await leader.metrics()
            assert metrics[series("itsmd_inbox_applied_seq")] == 1
            assert metrics[series("itsmd_inbox_applied_total")] == 1
            assert metrics[series("itsmd_alerts_received_total", source="alertmanager")] == 3
            # Read through the follower: the leader's answer, saying who served it.
            async with f.client.get("/api/v1/alerts?status=all") as resp:
                assert resp.headers["X-Itsmd-Leader"] == "leader-a"
                assert len((await resp.json())["alerts"]) == 3


async def test_on_the_schema_the_postgresql_backend_migrates(config_path: Path, tmp_path: Path, store_dsn: str) -> None:
    """The tables as daemon/storage/postgres creates them, not this package's copy of their DDL."""
    async with follower(config_path, tmp_path / "follower", store_dsn) as f:
        status, _, _ = await f.post("/api/v2/alerts", json.loads(posted("A")))
        assert status == 200
    leader = Leader(tmp_path / "leader", store_dsn)
    leader.start_writer()
    await leader.catch_up()
    assert leader.alerts() == {"A": "firing"}
    await leader.consumer.housekeeping()
    assert inbox_rows(store_dsn) == []
    await leader.close()


async def _open_insert(dsn: str, name: str) -> psycopg.AsyncConnection[Any]:
    """A follower's inbox transaction that has inserted its row (its seq taken) and not committed yet."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute("BEGIN")
    await conn.execute(
        "INSERT INTO inbox (received_at, replica, kind, body, principal, source) VALUES (%s, %s, %s, %s, %s, %s)",
        (T0, "follower-c", kinds.V2, posted(name), None, "prometheus"),
    )
    return conn


async def test_a_row_committed_after_a_higher_seq_is_applied_and_not_deleted(tmp_path: Path, store_dsn: str) -> None:
    # Follower C's transaction takes seq 1; follower B's takes seq 2 and commits first.
    slow = await _open_insert(store_dsn, "A")
    async with await psycopg.AsyncConnection.connect(store_dsn, autocommit=True) as conn:
        await inbox.insert(conn, [inbox.Received(T0, "follower-b", kinds.V2, posted("B"), None, None)])
    assert [r[0] for r in inbox_rows(store_dsn)] == [2]
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    try:
        # The leader reads while seq 1 is still in flight, and deletes what its committed cursor covers.
        if seq := await leader.consumer.step():
            await leader.consumer.durable(seq)
        await leader.consumer.housekeeping()
        await slow.execute("COMMIT")  # follower C answers 2xx now
        await leader.catch_up()
        await leader.consumer.housekeeping()
        assert leader.alerts() == {"A": "firing", "B": "firing"}
        assert inbox_rows(store_dsn) == []
        assert leader.consumer.pending == 0
    finally:
        await slow.close()
        await leader.close()

    # A leader started afterwards finds nothing left to apply.
    later = Leader(tmp_path, store_dsn)
    try:
        assert await later.consumer.step() == 0
    finally:
        await later.close()


async def test_a_row_in_flight_holds_back_the_rows_after_it_until_it_ends(tmp_path: Path, store_dsn: str) -> None:
    slow = await _open_insert(store_dsn, "A")
    store(store_dsn, posted("B"))
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    try:
        # B committed after A's transaction began: applying it now would put the cursor past A.
        assert await leader.consumer.step() == 0
        await leader.consumer.housekeeping()
        assert leader.consumer.pending == 1
        assert [r[0] for r in inbox_rows(store_dsn)] == [2]
        # A's transaction rolls back (its follower answered 503): the gap it leaves no longer holds B.
        await slow.execute("ROLLBACK")
        await leader.catch_up()
        assert leader.alerts() == {"B": "firing"}
        await leader.consumer.housekeeping()
        assert inbox_rows(store_dsn) == []
    finally:
        await slow.close()
        await leader.close()


async def test_a_transaction_that_inserts_late_with_an_older_id_is_waited_for(tmp_path: Path, store_dsn: str) -> None:
    # C's transaction gets its id by another write first; B's row commits; then C inserts and commits.
    slow = await psycopg.AsyncConnection.connect(store_dsn, autocommit=True)
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    try:
        await slow.execute("BEGIN")
        await slow.execute("UPDATE leader_lease SET holder = holder WHERE id = 1")
        store(store_dsn, posted("B"))
        assert await leader.consumer.step() == 0
        await slow.execute(
            "INSERT INTO inbox (received_at, replica, kind, body, principal, source) VALUES (%s, %s, %s, %s, %s, %s)",
            (T0, "follower-c", kinds.V2, posted("A"), None, "prometheus"),
        )
        await slow.execute("COMMIT")
        await leader.catch_up()
        assert leader.alerts() == {"A": "firing", "B": "firing"}
        assert inbox_rows(store_dsn) == []
    finally:
        await slow.close()
        await leader.close()


async def test_an_open_transaction_in_another_database_does_not_hold_the_inbox(tmp_path: Path, store_dsn: str) -> None:
    name, other_dsn = create_database()
    other = await psycopg.AsyncConnection.connect(other_dsn, autocommit=True)
    leader = Leader(tmp_path, store_dsn)
    leader.start_writer()
    try:
        await other.execute("BEGIN")
        await other.execute("CREATE TABLE busy (n INTEGER)")  # an id, held until this test ends
        store(store_dsn, posted("B"))
        await leader.catch_up()
        assert leader.alerts() == {"B": "firing"}
    finally:
        await other.close()
        await leader.close()
        drop_database(name)
