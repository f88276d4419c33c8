"""Locks per rendered key and the circuit breaker per runbook and key, both surviving a restart."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import ManualClock
from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook


def _locked(folder: Path, on_conflict: str, limits: str = "", hold: str = "1m", scope: str = "") -> Path:
    scoped = f", scope: {scope}" if scope else ""
    return write_runbook(
        folder,
        f"""
        name: locked-{on_conflict}
        params:
          host: {{pattern: '^[a-z0-9-]+$'}}
        concurrency: {{key: "{{{{ params.host }}}}", on_conflict: {on_conflict}, wait_timeout: 10m{scoped}}}
        {limits}
        steps:
          - name: hold
            sleep: {{duration: {hold}}}
            timeout: 1d
        """,
    )


async def test_a_second_run_on_the_same_key_is_skipped_or_waits(harness: Harness, tmp_path: Path) -> None:
    rbs = [_locked(tmp_path / "a", "skip", scope="global"), _locked(tmp_path / "b", "wait", scope="global")]
    engine = await harness.start(rbs)
    first = engine.start("locked-skip", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(first, RunStatus.RUNNING)
    other_key = engine.start("locked-skip", {"host": "db-2"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    skipped = engine.start("locked-skip", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(skipped)
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.reason == f"global lock 'db-1' is held by run {first.id} (locked-skip)"
    waiting = engine.start("locked-wait", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(waiting, RunStatus.WAITING_LOCK)
    assert engine.locks() == {(None, "db-1"): first.id, (None, "db-2"): other_key.id}
    await harness.until_sleeping(3)  # two sleep steps and the lock wait's timeout
    harness.sleeper.advance(60)
    await harness.until(first)
    await harness.until(waiting, RunStatus.RUNNING)
    assert engine.locks()[(None, "db-1")] == waiting.id
    await harness.until_sleeping(1)
    harness.sleeper.advance(60)
    await harness.until(waiting)
    assert (first.status, waiting.status, other_key.status) == (RunStatus.SUCCEEDED,) * 3
    assert engine.locks() == {}


async def test_a_lock_key_is_the_runbooks_own_unless_it_says_global(harness: Harness, tmp_path: Path) -> None:
    engine = await harness.start([_locked(tmp_path / "a", "skip"), _locked(tmp_path / "b", "wait")])
    first = engine.start("locked-skip", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(first, RunStatus.RUNNING)
    other = engine.start("locked-wait", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(other, RunStatus.RUNNING)  # another runbook's equal key string is another lock
    same = engine.start("locked-skip", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(same)
    assert (same.status, same.reason) == (RunStatus.SKIPPED, f"lock 'db-1' is held by run {first.id}")
    assert engine.locks() == {("locked-skip", "db-1"): first.id, ("locked-wait", "db-1"): other.id}
    assert harness.stored("SELECT lock_key, lock_scope FROM runs WHERE id = ?", first.id) == [("db-1", "runbook")]


async def test_waiting_for_a_lock_gives_up_after_wait_timeout(harness: Harness, tmp_path: Path) -> None:
    engine = await harness.start([_locked(tmp_path / "a", "wait", hold="1h")])
    holder = engine.start("locked-wait", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(holder, RunStatus.RUNNING)
    waiter = engine.start("locked-wait", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    await harness.until(waiter, RunStatus.WAITING_LOCK)
    await harness.until_sleeping(2)
    harness.sleeper.advance(599)
    assert waiter.status is RunStatus.WAITING_LOCK
    harness.sleeper.advance(1)
    ended = await harness.until(waiter)
    assert ended.status is RunStatus.SKIPPED
    assert waiter.reason.startswith(f"lock 'db-1' still held by run {holder.id} after 10m")


async def test_the_breaker_opens_escalates_and_survives_a_restart(tmp_path: Path) -> None:
    rb = _locked(tmp_path / "rb", "skip", limits="limits: {max_runs: 2, window: 1h}")
    clock = ManualClock()
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    for _ in range(2):
        run = engine.start("locked-skip", {"host": "db-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
        await h.until_sleeping(1)
        h.sleeper.advance(60)
        await h.until(run)
        assert run.status is RunStatus.SUCCEEDED
    assert engine.breakers_open() == {"locked-skip": True}
    await h.stop()

    clock.advance(600)
    h = Harness(tmp_path / "store", clock)
    engine = await h.start([rb])
    assert engine.breakers_open() == {"locked-skip": True}
    tripped = engine.start(
        "locked-skip",
        {"host": "db-1"},
        mode=RunMode.LIVE,
        trigger="incident_opened",
        requested_by="itsmd",
        incident_id=42,
    )
    assert tripped.status is RunStatus.SKIPPED
    assert tripped.reason.startswith("circuit breaker open: 2 runs of locked-skip for key 'db-1' within 1h")
    assert h.escalations == [(42, f"runbook locked-skip not run: {tripped.reason}")]
    other = engine.start("locked-skip", {"host": "db-9"}, mode=RunMode.LIVE, trigger="manual", requested_by="a")
    assert other.status is RunStatus.PENDING  # the breaker is per key
    await h.until_sleeping(1)
    h.sleeper.advance(3600)
    await h.until(other)
    assert engine.breakers_open() == {"locked-skip": False}  # the window moved past the two runs
    await h.stop()
