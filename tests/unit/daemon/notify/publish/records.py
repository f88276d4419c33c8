"""Plain in-memory records (incidents, runs, problems, drill runs) for the states to be computed from."""

from __future__ import annotations

from daemon.drills.model import DrillOutcome, DrillRun
from daemon.model import Incident, IncidentStatus, Problem, ProblemStatus, SlaClock
from daemon.runbook.model import Approval, Run, RunMode, RunStatus

T0 = 1_800_000_000.0


def incident(
    incident_id: int = 7,
    *,
    status: IncidentStatus = IncidentStatus.OPEN,
    priority: str = "P2",
    service: str = "checkout",
    respond: float | None = 900.0,
    resolve: float | None = 3600.0,
) -> Incident:
    return Incident(
        id=incident_id,
        key=f"k{incident_id}",
        service=service,
        title="checkout errors <b>high</b>",
        status=status,
        opened_at=T0,
        priority=priority,
        sla=SlaClock(respond_target=respond, resolve_target=resolve, since=T0),
    )


def run(run_id: int = 3, status: RunStatus = RunStatus.WAITING_APPROVAL, ended_at: float | None = None) -> Run:
    approval = Approval(requested_at=T0 + 5, message="restart checkout?", who=("role:approver",), timeout=3600.0)
    return Run(
        id=run_id,
        runbook="restart-checkout",
        version="sha",
        mode=RunMode.LIVE,
        status=status,
        params={},
        trigger="manual",
        requested_by="alice",
        incident_id=7,
        service="checkout",
        emergency=False,
        created_at=T0,
        ended_at=ended_at,
        approval=approval if status is RunStatus.WAITING_APPROVAL else None,
    )


def problem(problem_id: int = 2, status: ProblemStatus = ProblemStatus.CANDIDATE) -> Problem:
    return Problem(
        id=problem_id,
        signature="sig",
        service="checkout",
        title="checkout keeps failing",
        status=status,
        opened_at=T0,
        updated_at=T0,
        workaround="restart the pods",
    )


def drill(outcome: DrillOutcome = DrillOutcome.FAILED) -> DrillRun:
    return DrillRun(
        id=1,
        drill="db-failover",
        service="checkout",
        trigger="schedule",
        requested_by="scheduler",
        outcome=outcome,
        reason="recovery not observed within the RTO",
        started_at=T0,
        rto_seconds=300.0,
        ended_at=T0 + 400,
    )
