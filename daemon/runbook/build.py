"""Building a run: every template of a runbook rendered once against the run's params, and the plan of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.durations import format_duration
from daemon.runbook.actions.approval import ApprovalAction
from daemon.runbook.actions.base import Action
from daemon.runbook.actions.http import HttpAction
from daemon.runbook.errors import RunRefused
from daemon.runbook.library import LoadedRunbook
from daemon.runbook.model import Run, StepPhase
from daemon.runbook.redact import Redactor
from daemon.runbook.render import RenderError, TemplateRenderer
from daemon.runbook.spec import ActionChoice, RunbookFields, StepFields


@dataclass(frozen=True)
class BuiltStep:
    """One runbook step (or runbook-level verify) with its actions rendered."""

    index: int
    spec: StepFields
    phase: StepPhase
    action: Action
    verify: Action | None
    rollback: Action | None

    @property
    def timeout(self) -> float:
        if isinstance(self.action, ApprovalAction):
            # An approval's own timeout decides; the step timeout (60s by default) must not cut it short.
            return max(self.spec.timeout, self.action.timeout)
        return self.spec.timeout


@dataclass(frozen=True)
class BuiltRun:
    runbook: LoadedRunbook
    steps: tuple[BuiltStep, ...]
    lock_key: str | None
    lock_scope: str
    breaker_key: str | None
    sensitive: tuple[str, ...]
    approval_message: str
    """The runbook's approval.message, rendered once like every template."""


def build_run(
    loaded: LoadedRunbook, params: Mapping[str, str], run: Run, *, have: Mapping[str, bool], dry: bool = False
) -> BuiltRun:
    """`have`: which integrations are configured (a live run needs those its steps use)."""
    spec = loaded.spec
    if not dry:
        check_available(spec, have)
    variables = {
        "params": dict(params),
        "incident": {"id": run.incident_id, "service": run.service},
        "run": {
            "id": run.id,
            "runbook": run.runbook,
            "mode": run.mode.value,
            "trigger": run.trigger,
            "requested_by": run.requested_by,
            "emergency": run.emergency,
        },
    }
    render = TemplateRenderer(variables)
    try:
        steps = [build_step(i, s, "do", render) for i, s in enumerate(spec.steps)]
        steps += [build_step(len(spec.steps) + i, s, "verify", render) for i, s in enumerate(spec.verify)]
        approval_message = render(spec.approval.message)
        lock_key = render(spec.concurrency.key) if spec.concurrency is not None else None
        breaker_key = None
        if spec.limits is not None:
            breaker_key = render(spec.limits.key) if spec.limits.key is not None else (lock_key or "")
    except RenderError as exc:
        raise RunRefused("render_failed", str(exc)) from None
    sensitive = [
        v
        for b in steps
        for a in (b.action, b.verify, b.rollback)
        if isinstance(a, HttpAction)
        for v in a.sensitive_values()
    ]
    scope = spec.concurrency.scope if spec.concurrency is not None else "runbook"
    return BuiltRun(loaded, tuple(steps), lock_key, scope, breaker_key, tuple(sensitive), approval_message)


def build_step(index: int, spec: StepFields, phase: StepPhase, render: TemplateRenderer) -> BuiltStep:
    def build(choice: ActionChoice | None) -> Action | None:
        return choice.action[1].build(render) if choice is not None else None

    return BuiltStep(index, spec, phase, spec.action[1].build(render), build(spec.verify), build(spec.rollback))


def check_available(spec: RunbookFields, have: Mapping[str, bool]) -> None:
    found = missing(spec, have)
    if found:
        raise RunRefused("action_unavailable", found[0])


def missing(spec: RunbookFields, have: Mapping[str, bool]) -> list[str]:
    """Why a live run of this runbook would be refused: steps whose integration is not configured."""
    out: list[str] = []
    for step in (*spec.steps, *spec.verify):
        for choice in (step, step.verify, step.rollback):
            if choice is None:
                continue
            key, action = choice.action
            out.extend(
                f"step {step.name} uses {key}, which needs `{need}:` in the config"
                for need in action.requires
                if not have.get(need, False)
            )
    return out


def plan_of(loaded: LoadedRunbook, built: BuiltRun, params: Mapping[str, str], redactor: Redactor) -> dict[str, Any]:
    spec = loaded.spec
    redact = redactor.with_values(built.sensitive)

    def one(b: BuiltStep) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": b.spec.name,
            "phase": b.phase,
            "action": b.action.kind,
            "plan": redact.value(b.action.plan()),
            "timeout": format_duration(b.timeout),
            "retries": b.spec.retries,
            "idempotent": b.spec.idempotent,
            "needs_approval": isinstance(b.action, ApprovalAction),
        }
        if b.verify is not None:
            out["verify"] = {"action": b.verify.kind, "plan": redact.value(b.verify.plan())}
        if b.rollback is not None:
            out["rollback"] = {"action": b.rollback.kind, "plan": redact.value(b.rollback.plan())}
        return out

    return {
        "runbook": spec.name,
        "version": loaded.version,
        "params": dict(params),
        "change": {"type": spec.change.type, "risk": spec.change.risk},
        "approval": {
            "required": spec.approval.required,
            "who": list(spec.approval.who),
            "timeout": format_duration(spec.approval.timeout),
            "message": redact.text(built.approval_message),
        },
        "lock_key": built.lock_key,
        "lock_scope": built.lock_scope,
        "breaker_key": built.breaker_key,
        "on_failure": spec.on_failure.value,
        "on_interrupt": spec.on_interrupt.value,
        "steps": [one(b) for b in built.steps if b.phase == "do"],
        "verify": [one(b) for b in built.steps if b.phase == "verify"],
    }
