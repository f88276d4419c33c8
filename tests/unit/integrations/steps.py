"""Step contexts for the tests of the promql, wait_until and silence actions: a ManualClock whose sleep
moves it, and clients pointed at a local stand-in server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.clock import ManualClock
from daemon.runbook.actions.base import StepContext
from daemon.runbook.render import TemplateRenderer
from integrations.alertmanager.client import AlertmanagerClient
from integrations.prometheus.client import PrometheusClient
from tests.unit.integrations.upstream import Upstream

START = 1_800_000_000.0


@dataclass
class Sleeps:
    """The step's sleep: advances the clock instead of waiting, and runs a hook (change the world) each time."""

    clock: ManualClock
    hook: Callable[[], None] | None = None
    slept: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)
        if self.hook is not None:
            self.hook()
        await asyncio.sleep(0)


def context(
    upstream: Upstream,
    *,
    timeout: float = 60.0,
    prometheus: bool = True,
    alertmanager: bool = True,
    sleeps: Sleeps | None = None,
) -> StepContext:
    clock = sleeps.clock if sleeps is not None else ManualClock(START)
    session = upstream.session
    return StepContext(
        run_id=7,
        runbook="restart-db",
        step="check",
        clock=clock,
        http=session,
        prometheus=PrometheusClient(session, upstream.url("/prom"), timeout=1.0) if prometheus else None,
        alertmanager=AlertmanagerClient(session, upstream.url("/am"), timeout=1.0) if alertmanager else None,
        deadline=clock.now() + timeout,
        sleep=sleeps,
    )


def render(params: dict[str, str] | None = None) -> TemplateRenderer:
    return TemplateRenderer({"params": params or {}, "incident": None, "run": {"id": 7, "runbook": "restart-db"}})


def vector(*values: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [START, v]} for m, v in values]},
    }
