"""What every step action is: a spec read from YAML, built once into an Action with its templates rendered.

A spec is immutable data. `build(render)` renders each template field exactly once (alert data enters
only as Jinja2 variables, in a sandbox) and returns an Action holding the rendered values; nothing an
Action holds is ever rendered again. The engine runs `execute`, caps and redacts its output, journals
`Outcome.data` and hands that data back to `cleanup` at run end or on rollback, even after a restart.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict

from daemon.clock import Clock
from daemon.errors import ItsmdError
from daemon.runbook.digest import new_key

if TYPE_CHECKING:
    from integrations.alertmanager.client import AlertmanagerClient
    from integrations.prometheus.client import PrometheusClient


class Renderer(Protocol):
    def __call__(self, template: str) -> str:
        """Render one template string of the runbook (sandboxed, StrictUndefined, context {params, incident,
        run}). Each template is rendered exactly once, at build time; the output is never rendered again."""
        ...


class ActionUnavailable(ItsmdError):
    """The action needs something this daemon does not have (a promql step without `prometheus:` in the
    config): the run is refused when it is started, not half-way through."""


class ActionSpec(BaseModel):
    """One action as written in a runbook; every str field not marked plain is a template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requires: ClassVar[tuple[str, ...]] = ()
    """Integrations the action needs ("prometheus", "alertmanager"); the engine refuses a run without them."""

    @abstractmethod
    def build(self, render: Renderer) -> Action:
        """Render every template field once and return the runnable action."""


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    summary: str
    """One line for the journal and the CLI."""
    output: str = ""
    """Captured output; the engine caps and redacts it before it is stored or shown."""
    data: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable; persisted in the journal and handed to cleanup()."""
    started: bool = True
    """False only when the action was refused before it began (a missing secret or integration, a command
    that could not be spawned): nothing happened, so there is nothing to roll back. Any other failure
    (non-zero exit, timeout, an error half-way) may have had its effect, and counts as started."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Someone's answer to an approval: Engine.approve() or Engine.reject()."""

    approved: bool
    who: str
    """The authenticated principal who decided."""
    reason: str
    on_behalf_of: str | None = None
    """Whom the decider said it acts for (a request body's `by`); recorded, never trusted."""
    identities: frozenset[str] = frozenset()
    """What `who` answers to in an approval's `who` list besides its name (`role:approver`, `group:cab`)."""

    @property
    def decider(self) -> str:
        """The decider as the run's reason names it."""
        return f"{self.who} (on behalf of {self.on_behalf_of})" if self.on_behalf_of else self.who


ApprovalWait = Callable[[str, tuple[str, ...], float], Awaitable[Decision | None]]
"""(message, who may decide, timeout seconds) -> the decision, or None when the timeout passed."""


@dataclass
class StepContext:
    run_id: int
    runbook: str
    step: str
    clock: Clock
    http: aiohttp.ClientSession
    prometheus: PrometheusClient | None
    alertmanager: AlertmanagerClient | None
    deadline: float
    """Clock time the step's timeout ends (the engine enforces it too)."""
    dry_run: bool = False
    sleep: Callable[[float], Awaitable[None]] | None = None
    """The engine's sleep (asyncio.sleep in the daemon; tests pass one driven by a ManualClock)."""
    await_decision: ApprovalWait | None = None
    """Set by the engine: how an approval step waits for Engine.approve()/reject()."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Configured secret values by name (runbooks.secrets), for actions that pass them on."""
    digest_key: bytes = field(default_factory=new_key)
    """Key of the output digests (daemon.runbook.digest): the data directory's, set by the engine."""

    async def pause(self, seconds: float) -> None:
        if self.sleep is not None:
            await self.sleep(seconds)
        else:
            await asyncio.sleep(seconds)


class Action(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def plan(self) -> dict[str, Any]:
        """The rendered action, for dry runs and the journal (secrets are redacted by the engine)."""

    @abstractmethod
    async def execute(self, ctx: StepContext) -> Outcome:
        """Do it. Expected failures return Outcome(ok=False); the engine treats exceptions as failures too."""

    async def cleanup(self, ctx: StepContext, data: Mapping[str, Any]) -> None:
        """At run end or rollback, with execute's Outcome.data from the journal (works after a restart)."""
        return None

    async def reclaim(self, ctx: StepContext) -> list[str]:
        """Undo what an attempt whose outcome was lost may have left behind: it timed out, or the daemon died
        during it, before execute() could return (and the journal keep) the handle cleanup() needs. Returns
        what was undone, one phrase each. Most actions leave nothing that lasts for the run only."""
        return []
