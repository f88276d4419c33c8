"""The runbook engine: the one module that owns runs and their state changes.

(First cut of the interface; the implementation follows.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from daemon.clock import Clock
from daemon.errors import RequestError
from daemon.metrics.counters import CounterStore
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.library import RunbookLibrary
from daemon.runbook.model import Run, RunEvent, RunMode, RunStatus, StepRecord
from daemon.storage.writer import GroupCommitWriter
from daemon.tasks import TaskRegistry

__all__ = [
    "Engine",
    "Escalate",
    "InvalidRunTransition",
    "Run",
    "RunEvent",
    "RunMode",
    "RunRefused",
    "RunStatus",
    "StepRecord",
]

Escalate = Callable[[int, str], None]
"""(incident id, text): note an escalation on the incident (the daemon wires it to Correlator.add_note)."""


class RunRefused(RequestError):
    """A run that cannot start: unknown runbook, a param that does not match its pattern, a missing
    integration. 422 with the reason; nothing is recorded."""

    def __init__(self, reason: str, message: str, status: int = 422) -> None:
        super().__init__(reason, message, status)


class InvalidRunTransition(RequestError):
    """approve/reject/cancel in a state that does not allow it: 409 naming what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_transition", message, 409)


class Engine:
    def __init__(
        self,
        *,
        writer: GroupCommitWriter,
        library: RunbookLibrary,
        clock: Clock,
        tasks: TaskRegistry,
        http: aiohttp.ClientSession,
        counters: CounterStore,
        config: RunbooksConfig | None = None,
        prometheus: Any = None,
        alertmanager: Any = None,
        escalate: Escalate | None = None,
        secrets: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.library = library
        raise NotImplementedError

    def start(
        self,
        runbook: str,
        params: Mapping[str, str],
        *,
        mode: RunMode,
        trigger: str,
        requested_by: str,
        incident_id: int | None = None,
        service: str | None = None,
        emergency: bool = False,
    ) -> Run:
        raise NotImplementedError

    def plan(self, runbook: str, params: Mapping[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, run_id: int) -> Run | None:
        raise NotImplementedError

    def runs(self) -> list[Run]:
        raise NotImplementedError

    def approve(self, run_id: int, who: str, reason: str) -> Run:
        raise NotImplementedError

    def reject(self, run_id: int, who: str, reason: str) -> Run:
        raise NotImplementedError

    def cancel(self, run_id: int, who: str, reason: str) -> Run:
        raise NotImplementedError

    def cancel_for_incident(self, incident_id: int, reason: str) -> list[Run]:
        raise NotImplementedError

    def subscribe(self, listener: Callable[[RunEvent], None]) -> None:
        raise NotImplementedError

    def breakers_open(self) -> dict[str, bool]:
        """Per runbook: is its circuit breaker open for any key right now (for itsmd_runbook_breaker_open)."""
        raise NotImplementedError

    async def recover(self) -> None:
        raise NotImplementedError

    async def close(self, deadline: float) -> None:
        raise NotImplementedError
