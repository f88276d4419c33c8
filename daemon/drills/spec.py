"""rules/drills.yaml: which recovery runbook is rehearsed for which service, when, and against what targets.

```yaml
drills:
  - name: db-failover
    service: checkout
    runbook: failover-drill
    params: {cluster: main}
    schedule: "0 3 * * 2"          # cron, five fields; or "@every 30s" (an interval, for tests and labs)
    time_zone: Europe/Berlin
    rto: 5m
    rpo: 1m
    recovery:                      # how recovery is measured: one of
      promql: 'up{job="checkout"} == 1'   # first true after the run's steps, polled every `interval`
      interval: 5s
      # verify: true               # or: the runbook's own verify steps passing
```
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.durations import Duration, PositiveDuration, parse_duration
from daemon.scheduler.cron import cron_trigger
from daemon.yamlsource import Finding, load_yaml, raise_problems, validate

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
EVERY = "@every "
"""Cron has minute granularity; `@every DURATION` (as in robfig/cron) runs a drill at a fixed interval from
the daemon's start, for test stacks and labs that cannot wait a minute per run."""


class Recovery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    promql: str | None = None
    """Recovered when this query returns a non-empty result (a PromQL condition, like an alert rule)."""
    interval: PositiveDuration = 5.0
    verify: bool = False
    """Recovered when the runbook's own verify steps pass: recovery time is the run's duration."""

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.promql is None) == (not self.verify):
            raise ValueError("say how recovery is measured: either promql (a condition) or verify: true")
        return self


class Drill(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    service: str
    runbook: str
    params: dict[str, str] = Field(default_factory=dict)
    schedule: str
    time_zone: str = "UTC"
    rto: PositiveDuration
    """Recovery time objective: the drill fails if recovery takes longer."""
    rpo: Duration | None = None
    """Recovery point objective, reported with the drill; measured only when rpo_query is given."""
    rpo_query: str | None = None
    """PromQL returning the data-loss window in seconds observed at recovery (e.g. replication lag)."""
    recovery: Recovery
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a drill name is lower-case letters, digits, '.', '_' or '-' (at most 63)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value.startswith(EVERY):
            try:
                seconds = parse_duration(value.removeprefix(EVERY).strip())
            except ValueError as exc:
                raise ValueError(f"{value!r}: {exc}") from exc
            if seconds < 1:
                raise ValueError(f"{value!r}: an interval of at least 1s")
            return value
        try:
            cron_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid cron schedule (or @every DURATION): {exc}") from exc
        return value

    @property
    def interval(self) -> float | None:
        """Seconds between runs for an `@every` schedule, None for cron."""
        if self.schedule.startswith(EVERY):
            return parse_duration(self.schedule.removeprefix(EVERY).strip())
        return None

    def trigger(self) -> CronTrigger:
        """Only for cron schedules (interval is None)."""
        return cron_trigger(self.schedule, self.time_zone)


class DrillFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    drills: tuple[Drill, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        first: dict[str, int] = {}
        found: list[Finding] = []
        for i, drill in enumerate(self.drills):
            if drill.name in first:
                message = f"drill name {drill.name!r} is already used by {{also}}"
                found.append(Finding(("drills", i, "name"), message, also=("drills", first[drill.name])))
            first.setdefault(drill.name, i)
        raise_problems(found)
        return self


def load_drills(path: Path) -> DrillFile:
    return validate(load_yaml(path), DrillFile)


def check_drills(
    path: Path,
    *,
    services: Collection[str] | None = None,
    runbooks: Mapping[str, Collection[str]] | None = None,
) -> DrillFile:
    """load_drills plus the references: each drill's service is in the catalogue (when `services` is given) and
    its runbook exists and declares `trigger.on: [drill]` (when `runbooks`, name -> its trigger.on values, is
    given). A drill runbook is one whose author says it is safe to rehearse; any other runbook is refused.
    The references of the valid drills are checked even when other drills are not."""

    def references(drills: DrillFile) -> Iterator[Finding]:
        for i, drill in enumerate(drills.drills):
            if services is not None and drill.service not in services:
                yield Finding(
                    ("drills", i, "service"),
                    f"unknown service {drill.service!r}: it is not in the catalogue (services.yaml)",
                )
            if runbooks is None:
                continue
            triggers = runbooks.get(drill.runbook)
            if triggers is None:
                yield Finding(("drills", i, "runbook"), f"no runbook named {drill.runbook!r} in the runbooks folder")
            elif "drill" not in triggers:
                yield Finding(
                    ("drills", i, "runbook"),
                    f"runbook {drill.runbook!r} is not a drill runbook: add drill to its trigger.on",
                )

    return validate(load_yaml(path), DrillFile, references)
