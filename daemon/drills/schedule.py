"""Drill jobs on the daemon's scheduler: one per enabled drill, named `drill:<name>`, replaced on each reload."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from daemon.drills.runner import DrillRunner
from daemon.drills.spec import Drill
from daemon.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)
PREFIX = "drill:"


class DrillSchedule:
    def __init__(self, scheduler: Scheduler, runner: DrillRunner) -> None:
        self._scheduler = scheduler
        self._runner = runner

    def apply(self, drills: Sequence[Drill]) -> None:
        """Use these drills: the runner learns them, and each enabled one gets its job (others lose theirs)."""
        self._runner.set_drills(drills)
        wanted = {d.name for d in drills if d.enabled}
        for job in self._scheduler.job_names():
            if job.startswith(PREFIX) and job.removeprefix(PREFIX) not in wanted:
                self._scheduler.remove(job)
        for drill in drills:
            if not drill.enabled:
                continue
            name = drill.name

            def work(name: str = name) -> None:
                self._runner.run_scheduled(name)

            if drill.interval is not None:
                self._scheduler.add_interval(PREFIX + name, drill.interval, work)
            else:
                self._scheduler.add_cron(PREFIX + name, drill.schedule, work, timezone=drill.time_zone)
        log.info("drills: %d scheduled, %d disabled", len(wanted), len(drills) - len(wanted))

    def next_run(self, name: str) -> datetime | None:
        return self._scheduler.next_run(PREFIX + name)
