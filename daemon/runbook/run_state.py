"""The runs in memory and their journal: every state change marks the run dirty for the group-commit writer,
and tells the listeners."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from daemon.clock import Clock
from daemon.errors import StoreUnavailable
from daemon.metrics.counters import CounterStore
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.guards import Locks
from daemon.runbook.model import Run, RunEvent, RunStatus, StepRecord
from daemon.storage.database import Batch
from daemon.storage.runs import UPSERT_RUN, UPSERT_STEP, run_row, step_row
from daemon.storage.writer import GroupCommitWriter

# The engine's logger name, as before the split: log configuration filters on it.
log = logging.getLogger("daemon.runbook.engine")

RUNS_TOTAL = "itsmd_runbook_runs_total"
"""Counter in the CounterStore, labels (mode, outcome, runbook): incremented when a run ends."""


class RunState:
    def __init__(
        self,
        *,
        writer: GroupCommitWriter,
        clock: Clock,
        counters: CounterStore,
        config: RunbooksConfig,
        locks: Locks,
    ) -> None:
        self.runs: dict[int, Run] = {}
        self.locks = locks
        self._writer = writer
        self._clock = clock
        self._counters = counters
        self._config = config
        self._listeners: list[Callable[[RunEvent], None]] = []
        self._dirty_runs: set[int] = set()
        self._dirty_steps: set[tuple[int, int]] = set()
        writer.add_collector(self._collect)

    def subscribe(self, listener: Callable[[RunEvent], None]) -> None:
        self._listeners.append(listener)

    def set_status(self, run: Run, status: RunStatus, reason: str) -> None:
        if run.status is status and run.reason == reason:
            return
        run.status = status
        run.reason = reason
        self.mark_run(run)
        self.emit(run, "status")

    def finish(self, run: Run, status: RunStatus, reason: str) -> None:
        run.status = status
        run.reason = reason
        run.ended_at = self._clock.now()
        self.mark_run(run)
        if status is not RunStatus.HELD and run.lock is not None:
            self.locks.release(run.lock, run.id)
        if status is not RunStatus.HELD:
            # Held waits for a human and ends later (cancelled); counting it now would count the run twice.
            labels = (("mode", run.mode.value), ("outcome", status.value), ("runbook", run.runbook))
            self._counters.inc(RUNS_TOTAL, labels)
        self.emit(run, "status")
        self._trim()

    def _trim(self) -> None:
        finished = [r.id for r in self.runs.values() if not r.active and r.status is not RunStatus.HELD]
        for run_id in finished[: max(len(finished) - self._config.history, 0)]:
            if run_id not in self._dirty_runs:  # its rows are not written yet
                self.runs.pop(run_id, None)

    def mark_run(self, run: Run) -> None:
        self._dirty_runs.add(run.id)
        self._writer.changed()

    def mark_step(self, run: Run, rec: StepRecord, *, lazy: bool = False) -> None:
        self._dirty_runs.add(run.id)
        self._dirty_steps.add((run.id, rec.index))
        if lazy:
            self._writer.touched()
        else:
            self._writer.changed()

    async def durable(self) -> None:
        await self._writer.durable(self._writer.changed(), self._config.durable_timeout)

    async def flush(self) -> None:
        """Like durable(), for start-up and shutdown: a store that is down does not stop them."""
        seq = self._writer.changed()
        with contextlib.suppress(StoreUnavailable):
            await self._writer.durable(seq, self._config.durable_timeout)

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for run_id in self._dirty_runs:
            run = self.runs.get(run_id)
            if run is not None:
                batch.upsert(UPSERT_RUN, run_id, run_row(run))
        for run_id, index in self._dirty_steps:
            run = self.runs.get(run_id)
            if run is not None and index < len(run.steps):
                batch.upsert(UPSERT_STEP, (run_id, index), step_row(run_id, run.steps[index]))
        self._dirty_runs.clear()
        self._dirty_steps.clear()

    def emit(self, run: Run, kind: Any) -> None:
        event = RunEvent(run, kind)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("run listener failed")
