"""Runs, approvals, problems and drills as outbox events. Each listener runs inside the change it reports,
so its delivery rows land in that change's commit (see outbox.py)."""

from __future__ import annotations

from daemon.drills.model import DrillRun
from daemon.model import Problem
from daemon.notify.outbox.config import EventKind
from daemon.notify.outbox.outbox import Event, Outbox
from daemon.runbook.model import Run, RunEvent, RunStatus

PROBLEM_KINDS = {"opened": EventKind.PROBLEM_OPENED, "known_error": EventKind.PROBLEM_KNOWN_ERROR}


def _run(run: Run) -> dict[str, object]:
    return {
        "run": {
            "id": run.id,
            "runbook": run.runbook,
            "mode": run.mode.value,
            "status": run.status.value,
            "trigger": run.trigger,
            "requested_by": run.requested_by,
            "reason": run.reason,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
        }
    }


class RunNotices:
    """approval_requested when a run starts waiting for its approval, approval_decided when it is decided,
    run_ended when the run reaches a final status. Each once per run (the engine tells every status change)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._asked: set[int] = set()
        self._decided: set[int] = set()

    def restore(self, runs: list[Run]) -> None:
        """Runs already waiting or decided at start were told before the restart."""
        for run in runs:
            if run.approval is not None:
                self._asked.add(run.id)
                if run.approval.decision is not None:
                    self._decided.add(run.id)

    def on_run_event(self, event: RunEvent) -> None:
        if event.kind != "status":
            return
        run = event.run
        approval = run.approval
        if run.status is RunStatus.WAITING_APPROVAL and approval is not None and run.id not in self._asked:
            self._asked.add(run.id)
            data = {**_run(run), "approval": approval.as_json()}
            self._publish(EventKind.APPROVAL_REQUESTED, approval.requested_at, run, data)
        if approval is not None and approval.decision is not None and run.id not in self._decided:
            self._decided.add(run.id)
            at = approval.decided_at if approval.decided_at is not None else approval.requested_at
            self._publish(EventKind.APPROVAL_DECIDED, at, run, {**_run(run), "approval": approval.as_json()})
        if run.status.terminal:
            self._asked.discard(run.id)
            self._decided.discard(run.id)
            at = run.ended_at if run.ended_at is not None else run.created_at
            self._publish(EventKind.RUN_ENDED, at, run, _run(run))

    def _publish(self, kind: EventKind, at: float, run: Run, data: dict[str, object]) -> None:
        self._outbox.publish(Event(kind, at, run.service or "", None, run.incident_id, data))


class ProblemNotices:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def on_problem(self, action: str, problem: Problem, now: float) -> None:
        kind = PROBLEM_KINDS.get(action)
        if kind is None:
            return
        data: dict[str, object] = {
            "problem": {
                "id": problem.id,
                "title": problem.title,
                "status": problem.status.value,
                "root_cause": problem.root_cause,
                "workaround": problem.workaround,
                "runbook": problem.runbook,
                "incidents": list(problem.incidents),
            }
        }
        self._outbox.publish(Event(kind, now, problem.service, None, None, data))


class DrillNotices:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def on_drill_ended(self, d: DrillRun) -> None:
        data: dict[str, object] = {
            "drill": {
                "id": d.id,
                "name": d.drill,
                "outcome": d.outcome.value,
                "reason": d.reason,
                "trigger": d.trigger,
                "started_at": d.started_at,
                "ended_at": d.ended_at,
                "recovery_seconds": d.recovery_seconds,
                "rto_seconds": d.rto_seconds,
                "data_loss_seconds": d.data_loss_seconds,
                "run_id": d.run_id,
            }
        }
        at = d.ended_at if d.ended_at is not None else d.started_at
        self._outbox.publish(Event(EventKind.DRILL_ENDED, at, d.service, None, None, data))
