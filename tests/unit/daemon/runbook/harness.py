"""A real engine for tests: SQLite store, running group-commit writer, HTTP session, and time driven by
a ManualClock (a sleep that waits for the test to move the clock, never for real time)."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from daemon.audit import AuditLog
from daemon.clock import ManualClock
from daemon.metrics.counters import CounterStore
from daemon.runbook.check import load_runbook
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.digest import load_key as load_digest_key
from daemon.runbook.engine import Engine
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.model import Run, RunEvent, RunStatus
from daemon.storage.counters import load_counters
from daemon.storage.database import Database
from daemon.storage.runs import load_runs
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry


class ManualSleeper:
    """The engine's sleep: returns once the test has advanced the clock past the sleeper's due time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._waiting: list[tuple[float, asyncio.Future[None]]] = []
        self.added = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((self.clock.now() + seconds, fut))
        self.added.set()
        await fut

    @property
    def sleepers(self) -> int:
        return sum(1 for _, f in self._waiting if not f.done())

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        keep = []
        for due, fut in self._waiting:
            if due <= self.clock.now():
                if not fut.done():
                    fut.set_result(None)
            elif not fut.done():
                keep.append((due, fut))
        self._waiting = keep


def write_runbook(folder: Path, text: str, name: str | None = None) -> Path:
    body = textwrap.dedent(text)
    stem = name or body.split("name:", 1)[1].split()[0]
    path = folder / f"{stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


class Harness:
    def __init__(self, folder: Path, clock: ManualClock | None = None) -> None:
        self.folder = folder
        self.clock = clock or ManualClock()
        self.sleeper = ManualSleeper(self.clock)
        self.db = Database(folder / "itsmd.db")
        folder.mkdir(parents=True, exist_ok=True)
        self.digest_key = load_digest_key(folder)
        self.escalations: list[tuple[int, str]] = []
        self.events: list[tuple[int, str, RunStatus]] = []
        self._changed = asyncio.Event()

    async def start(
        self,
        runbooks: list[Path],
        *,
        config: RunbooksConfig | None = None,
        secrets: Mapping[str, str] | None = None,
        prometheus: Any = None,
        alertmanager: Any = None,
    ) -> Engine:
        library = RunbookLibrary.of(load_runbook(p) for p in runbooks)
        self.db.open()
        self.writer = GroupCommitWriter(self.db, flush_interval=0.05)
        self.counters = CounterStore(self.writer)
        self.audit = AuditLog(self.writer)
        self.tasks = TaskRegistry()
        self.session = aiohttp.ClientSession()
        self.engine = Engine(
            writer=self.writer,
            library=library,
            clock=self.clock,
            tasks=self.tasks,
            http=self.session,
            counters=self.counters,
            config=config,
            escalate=lambda incident, text: self.escalations.append((incident, text)),
            secrets=secrets,
            sleep=self.sleeper,
            prometheus=prometheus,
            alertmanager=alertmanager,
            digest_key=self.digest_key,
            audit=self.audit,
        )
        self.engine.subscribe(self._on_event)
        snapshot = load_runs(self.db.primary, now=self.clock.now(), breaker_lookback=86400.0, history=100)
        self.engine.restore(snapshot)
        self.counters.restore(load_counters(self.db.primary))
        self.writer_task = asyncio.create_task(self.writer.run())
        await self.engine.recover()
        return self.engine

    def _on_event(self, event: RunEvent) -> None:
        self.events.append((event.run.id, event.kind, event.run.status))
        self._changed.set()

    async def until(self, run: Run, *statuses: RunStatus, within: float = 10.0) -> Run:
        """Wait (on engine events, not on time) until the run reaches one of the statuses."""
        wanted = set(statuses) or None

        async def reached() -> None:
            while not (run.status in wanted if wanted else run.status.terminal):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), within)
        await self.writer.durable(self.writer.changed(), within)  # so the test can read the store
        return run

    async def until_sleeping(self, count: int = 1, within: float = 10.0) -> None:
        """Wait until `count` engine sleeps (backoff, sleep steps, approval or lock timeouts) are pending."""

        async def reached() -> None:
            while self.sleeper.sleepers < count:
                self.sleeper.added.clear()
                await self.sleeper.added.wait()

        await asyncio.wait_for(reached(), within)

    def stored(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return list(self.db.conn.execute(sql, args))

    async def stop(self, *, engine_deadline: float = 0.2) -> None:
        await self.engine.close(engine_deadline)
        await self.tasks.close()
        self.writer.close()
        await self.writer_task
        await self.session.close()
        self.writer.shutdown_thread()
        self.db.close()

    async def crash(self) -> None:
        """Stop without the engine's orderly close: tasks cancelled, whatever was committed stays."""
        self.writer_task.cancel()  # first: nothing the runs do from here on reaches the store
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer_task
        await self.tasks.close()
        await self.session.close()
        self.writer.shutdown_thread()
        self.db.close()
