"""A StepContext for running one action directly, outside the engine."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from daemon.clock import ManualClock
from daemon.runbook.actions.base import StepContext


def context(
    session: aiohttp.ClientSession,
    *,
    seconds: float = 10.0,
    secrets: Mapping[str, str] | None = None,
    clock: ManualClock | None = None,
) -> StepContext:
    clock = clock or ManualClock()
    return StepContext(
        run_id=1,
        runbook="test",
        step="step",
        clock=clock,
        http=session,
        prometheus=None,
        alertmanager=None,
        deadline=clock.now() + seconds,
        secrets=dict(secrets or {}),
    )


def plain(template: str) -> str:
    """A renderer for specs without variables."""
    return template
