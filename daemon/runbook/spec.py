"""The runbook file format: immutable pydantic models, and the step model built from the ACTIONS registry.

A step (and a step's rollback or verify) is a mapping with exactly one action key plus step fields. The
models holding an action are created from ACTIONS when this module is imported, so registering an action is
all it takes for the format, the JSON Schema and `itsmd check` to know it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from daemon.durations import Duration, PositiveDuration
from daemon.runbook.actions import ACTIONS
from daemon.runbook.actions.base import ActionSpec

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerOn(StrEnum):
    INCIDENT_OPENED = "incident_opened"
    REPEATED = "repeated"
    KNOWN_ERROR = "known_error"
    DRILL = "drill"


class Trigger(_Strict):
    on: tuple[TriggerOn, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `on` key as the boolean true; take it back as the key it was meant as.
        if isinstance(data, dict) and "True" in data and "on" not in data:
            data = {("on" if k == "True" else k): v for k, v in data.items()}
        return data

    service: tuple[str, ...] = ()
    """Services the runbook applies to (plain names); empty: any."""
    priority: tuple[Literal["P1", "P2", "P3", "P4", "P5"], ...] = ()
    matchers: tuple[str, ...] = ()
    """Alertmanager-style matchers on the labels of the alert behind the event: name="v", !=, =~, !~."""


class Param(_Strict):
    label: str | None = None
    """Alert label the value comes from on triggered runs; by default the param's own name."""
    pattern: str
    """Regular expression the whole value must match (an allowlist); a value that does not is refused."""
    required: bool = True
    default: str | None = None
    description: str = ""


class ChangeSpec(_Strict):
    type: Literal["standard", "normal", "emergency"] = "standard"
    """standard: pre-approved automation; normal: needs approval (the run waits for it)."""
    risk: Literal["low", "medium", "high"] = "low"


class ApprovalPolicy(_Strict):
    required: bool = False
    who: tuple[str, ...] = ()
    """Who may decide: principal names, `role:<role>` (that role or higher) or `group:<group>` (a group the
    trusted proxy names); empty: any principal whose role may approve."""
    timeout: PositiveDuration = 3600.0
    message: str = "approve to start"
    allow_self_approval: bool = False
    """Separation of duties: unless this is true, whoever requested a normal change may not approve it."""


class Concurrency(_Strict):
    key: str
    """Template of the lock key, from params only (for example "{{ params.instance }}")."""
    scope: Literal["runbook", "global"] = "runbook"
    """runbook: the key is this runbook's own (another runbook's equal key is another lock); global: every
    runbook saying `scope: global` with the same key shares one lock (two runbooks working on one target)."""
    on_conflict: Literal["wait", "skip"] = "wait"
    wait_timeout: PositiveDuration = 600.0
    """How long a run waits for the lock before it is skipped."""


class Limits(_Strict):
    max_runs: int = Field(gt=0)
    """Runs per runbook and key within the window; the next one opens the circuit breaker."""
    window: PositiveDuration = 3600.0
    key: str | None = None
    """Template of the breaker key (params only); by default the concurrency key, else one per runbook."""


def _exactly_one_action(schema: dict[str, Any]) -> None:
    # Editors then flag a step with no action or two, as the validator below does.
    schema["oneOf"] = [{"required": [key]} for key in ACTIONS]


class ActionChoice(_Strict):
    """Exactly one action key (one of ACTIONS) and its spec."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_exactly_one_action)

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keys = [k for k in data if k in ACTIONS]
            if not keys:
                raise ValueError(f"needs one action: {', '.join(ACTIONS)}")
            if len(keys) > 1:
                raise ValueError(f"has more than one action ({', '.join(keys)}); split it into steps")
        return data

    @property
    def action(self) -> tuple[str, ActionSpec]:
        for key in ACTIONS:
            spec = self.__dict__.get(key)
            if isinstance(spec, ActionSpec):
                return key, spec
        raise RuntimeError("validated action mapping without an action")  # the validator prevents this


class StepFields(ActionChoice):
    name: str = Field(pattern=NAME_PATTERN)
    timeout: PositiveDuration = 60.0
    retries: int = Field(default=0, ge=0, le=100)
    backoff: Duration = 1.0
    """Wait before the first retry; doubled before each further one."""
    idempotent: bool = False
    """Safe to run again after an interruption: a run stopped during it resumes by re-running it."""
    rollback: ActionChoice | None = None
    verify: ActionChoice | None = None


class OnFailure(StrEnum):
    ROLLBACK = "rollback"
    STOP = "stop"
    CONTINUE = "continue"


class OnInterrupt(StrEnum):
    RESUME = "resume"
    ROLLBACK = "rollback"
    HOLD = "hold"


class RunbookFields(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    trigger: Trigger | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    change: ChangeSpec = ChangeSpec()
    approval: ApprovalPolicy = ApprovalPolicy()
    concurrency: Concurrency | None = None
    limits: Limits | None = None
    on_failure: OnFailure = OnFailure.ROLLBACK
    on_interrupt: OnInterrupt = OnInterrupt.HOLD
    """After a restart found the run mid-step: resume (only if that step is idempotent, else hold), roll back
    the steps that ran (the one in flight included), or hold it for a human."""
    steps: tuple[StepFields, ...] = Field(min_length=1)
    verify: tuple[StepFields, ...] = ()
    """Checks after the last step (actions such as promql); a failing check fails the run."""


def _action_fields() -> dict[str, Any]:
    return {key: (spec | None, None) for key, spec in ACTIONS.items()}


ActionRef: type[ActionChoice] = create_model("ActionRef", __base__=ActionChoice, **_action_fields())
Step: type[StepFields] = create_model(
    "Step",
    __base__=StepFields,
    rollback=(ActionRef | None, None),
    verify=(ActionRef | None, None),
    **_action_fields(),
)
Runbook: type[RunbookFields] = create_model(
    "Runbook",
    __base__=RunbookFields,
    steps=(tuple[Step, ...], Field(min_length=1)),
    verify=(tuple[Step, ...], ()),
)
