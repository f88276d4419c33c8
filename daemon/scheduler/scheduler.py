"""The one scheduler (APScheduler 3, AsyncIOScheduler on the daemon's event loop).

The scheduler only decides *when* to wake a component; what is due is computed by the component itself
from the injectable clock (`DueJob.next_due()` / `run_due(now)`), so unit tests call those with a
ManualClock and never wait for the scheduler. Components announce new deadlines with `wake_at(name, t)`;
each due job also re-checks every `resync` seconds as a safety net against a missed announcement or a
wall-clock jump. Jobs are coroutine functions, so APScheduler runs them on the event loop (never in a
thread); their work is synchronous and short, and each run is followed by a reschedule for the next due
time. Cron jobs (`add_cron`) are for calendar work such as drills and reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.clock import Clock
from daemon.scheduler.cron import cron_trigger

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None] | None]


class DueJob(Protocol):
    def next_due(self) -> float | None:
        """Clock time of the next thing to do, None for nothing."""
        ...

    def run_due(self, now: float) -> None:
        """Do everything due by `now` (clock time)."""
        ...


class Scheduler:
    def __init__(self, clock: Clock, *, resync: float = 30.0) -> None:
        self._clock = clock
        self._resync = resync
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        # APScheduler logs every run at INFO; ours log what they do themselves, failures included.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._due_jobs: dict[str, DueJob] = {}
        self.runs: dict[str, int] = {}
        """Runs per job, for tests and logs."""
        self.last_run: dict[str, float] = {}

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    def start(self) -> None:
        """Start on the running event loop."""
        self._aps.start()

    async def shutdown(self) -> None:
        """Stop: no job starts after this; a job being run is cancelled (their work is synchronous, so none
        is ever half done)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback

    def add_due(self, name: str, job: DueJob) -> None:
        self._due_jobs[name] = job

        async def run() -> None:
            self._run(name, lambda: job.run_due(self._clock.now()))
            self._reschedule(name)

        due = job.next_due()
        self._aps.add_job(
            run,
            IntervalTrigger(seconds=self._resync),
            id=name,
            name=name,
            next_run_time=self._wall(self._clock.now() + self._resync if due is None else due),
            misfire_grace_time=None,
            replace_existing=True,
        )

    def add_interval(self, name: str, seconds: float, work: Work) -> None:
        self._aps.add_job(
            self._wrap(name, work),
            IntervalTrigger(seconds=seconds),
            id=name,
            name=name,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def add_cron(self, name: str, crontab: str, work: Work, *, timezone: str = "UTC") -> None:
        trigger = cron_trigger(crontab, timezone)
        self._aps.add_job(
            self._wrap(name, work), trigger, id=name, name=name, misfire_grace_time=None, replace_existing=True
        )

    def remove(self, name: str) -> None:
        """Drop job `name` (no error when there is none), e.g. a drill a reload removed."""
        if self._aps.get_job(name) is not None:
            self._aps.remove_job(name)

    def job_names(self) -> list[str]:
        return [job.id for job in self._aps.get_jobs()]

    def wake_at(self, name: str, at: float) -> None:
        """Make sure job `name` runs no later than clock time `at`."""
        job = self._aps.get_job(name)
        if job is None:
            return
        when = self._wall(at)
        if job.next_run_time is None or when < job.next_run_time:
            job.modify(next_run_time=when)

    def next_run(self, name: str) -> datetime | None:
        job = self._aps.get_job(name)
        return job.next_run_time if job is not None else None

    def _reschedule(self, name: str) -> None:
        job = self._aps.get_job(name)
        due = self._due_jobs[name].next_due()
        if job is None or due is None:
            return
        when = self._wall(due)
        if job.next_run_time is None or when < job.next_run_time:
            job.modify(next_run_time=when)

    def _wall(self, at: float) -> datetime:
        """Clock time to the scheduler's wall time (they differ only under a test clock)."""
        return datetime.now(UTC) + timedelta(seconds=max(0.0, at - self._clock.now()))

    def _run(self, name: str, work: Callable[[], object]) -> object:
        self.runs[name] = self.runs.get(name, 0) + 1
        self.last_run[name] = self._clock.now()
        try:
            return work()
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next time", name)
            return None

    def _wrap(self, name: str, work: Work) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            result = self._run(name, work)
            if isinstance(result, Awaitable):
                try:
                    await result
                except Exception:
                    log.exception("scheduled job %s failed; it runs again at its next time", name)

        return run
