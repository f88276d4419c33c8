"""The states that need a person, computed from memory each interval: one `State` per alert to publish.

Labels say *which thing* is in the state and never change while it holds, so Alertmanager's fingerprint of a
state is the same on every re-send and after a restart (no time, status or counter is a label). What changes
while the state holds goes into annotations: an incident's status (open -> acknowledged), title, summary and
console link. Priority is a label, because routes page on it: an incident whose priority rises therefore
resolves its ItsmdIncidentOpen of the old priority and fires one of the new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from daemon.catalogue.windows import MaintenanceWindow, counted
from daemon.correlate import sla
from daemon.drills.model import DrillOutcome, DrillRun
from daemon.model import Incident, Problem, ProblemStatus
from daemon.notify.publish.config import MARK_LABEL, Kind, PublishConfig
from daemon.runbook.model import Run, RunMode, RunStatus

FAILED_RUNS = (RunStatus.FAILED, RunStatus.ROLLBACK_FAILED)
Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class State:
    kind: Kind
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float

    @property
    def key(self) -> Key:
        """What Alertmanager's fingerprint is computed from: the label set."""
        return tuple(sorted(self.labels.items()))


@dataclass
class Sources:
    """Read-only views of the components that hold the states; each call reads memory only."""

    incidents: Callable[[], Iterable[Incident]]
    team_of: Callable[[str], str] = lambda service: ""
    windows_of: Callable[[str], tuple[MaintenanceWindow, ...]] = lambda service: ()
    runs: Callable[[], Iterable[Run]] = lambda: ()
    breakers_open: Callable[[], dict[str, bool]] = dict
    problems: Callable[[], Iterable[Problem]] = lambda: ()
    drills: Callable[[], Iterable[DrillRun]] = lambda: ()
    """The newest run of each drill."""


class Links:
    """Console links, from `notify.external_url`; without it annotations carry the path alone."""

    def __init__(self, external_url: str | None) -> None:
        self._base = (external_url or "").rstrip("/")

    @property
    def absolute(self) -> bool:
        return bool(self._base)

    def incident(self, incident_id: int) -> str:
        return f"{self._base}/incidents/{incident_id}"

    def run(self, run_id: int) -> str:
        return f"{self._base}/runs/{run_id}"

    def problem(self, problem_id: int) -> str:
        return f"{self._base}/problems/{problem_id}"


def current(
    sources: Sources, config: PublishConfig, links: Links, now: float
) -> dict[tuple[tuple[str, str], ...], State]:
    """Every state of a published kind that holds at `now`, by label set."""
    wanted = set(config.kinds)
    out: dict[Key, State] = {}
    problems = {p.id: p for p in sources.problems()}
    for state in _all(sources, config, links, now, problems):
        if state.kind in wanted:
            state.labels.update({"alertname": state.kind, MARK_LABEL: config.instance})
            out[state.key] = state
    return out


def _all(
    sources: Sources, config: PublishConfig, links: Links, now: float, problems: dict[int, Problem]
) -> Iterable[State]:
    for incident in sources.incidents():
        if incident.status.active:
            yield from _incident_states(
                incident, sources=sources, config=config, links=links, now=now, problems=problems
            )
    for run in sources.runs():
        yield from _run_states(run, config, links, now)
    for runbook, is_open in sorted(sources.breakers_open().items()):
        if is_open:
            yield State(
                "ItsmdBreakerOpen",
                {"runbook": runbook},
                {"summary": f"The circuit breaker of runbook {runbook} is open: its automatic runs are refused."},
                now,
            )
    for problem in problems.values():
        if problem.status is ProblemStatus.CANDIDATE:
            yield State(
                "ItsmdProblemCandidate",
                {"problem": str(problem.id), "service": problem.service},
                {
                    "title": problem.title,
                    "summary": f"Problem {problem.id} ({problem.service}) is a candidate: confirm or dismiss it.",
                    "console_url": links.problem(problem.id),
                },
                problem.opened_at,
            )
    for drill in sources.drills():
        if drill.outcome is DrillOutcome.FAILED:
            yield State(
                "ItsmdDrillFailed",
                {"drill": drill.drill, "service": drill.service},
                {"summary": f"The latest run of drill {drill.drill} failed: {drill.reason}"},
                drill.ended_at or drill.started_at,
            )


def _incident_states(
    incident: Incident,
    *,
    sources: Sources,
    config: PublishConfig,
    links: Links,
    now: float,
    problems: dict[int, Problem],
) -> Iterable[State]:
    ident = {"incident": str(incident.id), "service": incident.service, "priority": incident.priority}
    # The incident's own team (a reassignment to another team re-routes it: a new alert for that team, the old one
    # resolved); the catalogue's for incidents stored before incidents had one.
    team = incident.team or sources.team_of(incident.service)
    if team:
        ident["team"] = team
    url = links.incident(incident.id)
    base = {"title": incident.title, "status": incident.status.value, "console_url": url}
    if incident.assignee:
        base["assignee"] = incident.assignee
    yield State(
        "ItsmdIncidentOpen",
        dict(ident),
        {
            **base,
            "summary": f"Incident {incident.id} ({incident.service}, {incident.priority}) is {incident.status.value}: "
            f"{incident.title}",
        },
        incident.opened_at,
    )
    used = _sla_used(incident, sources.windows_of(incident.service), now)
    for target, budget in ((sla.RESPOND, incident.sla.respond_target), (sla.RESOLVE, incident.sla.resolve_target)):
        if target == sla.RESPOND and incident.acknowledged_at is not None:
            continue
        if target in incident.sla.breaches:
            yield State(
                "ItsmdSlaBreached",
                {**ident, "target": target},
                {**base, "summary": f"Incident {incident.id} missed its {target} target ({incident.priority})."},
                incident.opened_at,
            )
        elif budget and used / budget >= config.at_risk_share(incident.priority):
            yield State(
                "ItsmdSlaAtRisk",
                {**ident, "target": target},
                {
                    **base,
                    "summary": f"Incident {incident.id} has used {used / budget:.0%} of its {target} target "
                    f"({incident.priority}).",
                },
                incident.opened_at,
            )
    problem = problems.get(incident.problem_id) if incident.problem_id is not None else None
    if problem is not None and problem.status is ProblemStatus.KNOWN_ERROR:
        yield State(
            "ItsmdKnownErrorMatched",
            {**ident, "problem": str(problem.id)},
            {
                **base,
                "summary": f"Incident {incident.id} matches known error {problem.id}: {problem.title}",
                "workaround": incident.workaround or problem.workaround,
            },
            incident.opened_at,
        )


def _sla_used(incident: Incident, windows: tuple[MaintenanceWindow, ...], now: float) -> float:
    """SLA time the incident has used by now (maintenance and paused statuses not counted)."""
    clock = incident.sla
    return clock.counted + (counted(windows, clock.since, now) if clock.since is not None else 0.0)


def _run_states(run: Run, config: PublishConfig, links: Links, now: float) -> Iterable[State]:
    ident = {"run": str(run.id), "runbook": run.runbook}
    if run.service:
        ident["service"] = run.service
    url = links.run(run.id)
    if run.status is RunStatus.WAITING_APPROVAL:
        who = ", ".join(run.approval.who) if run.approval is not None and run.approval.who else "any approver"
        yield State(
            "ItsmdApprovalPending",
            {**ident, "approver": who},
            {
                "summary": f"Run {run.id} of runbook {run.runbook} waits for approval by {who}.",
                "description": run.approval.message if run.approval is not None else run.reason,
                "console_url": url,
            },
            run.approval.requested_at if run.approval is not None else run.created_at,
        )
    elif run.status is RunStatus.HELD or (
        # A drill's failed run is the drill's failure: ItsmdDrillFailed says it, with the drill's name.
        run.status in FAILED_RUNS
        and run.mode is not RunMode.DRILL
        and run.ended_at is not None
        and now - run.ended_at < config.failed_runs_for
    ):
        yield State(
            "ItsmdRunFailed",
            dict(ident),
            {
                "status": run.status.value,
                "summary": f"Run {run.id} of runbook {run.runbook} is {run.status.value}: {run.reason}",
                "console_url": url,
            },
            run.ended_at or run.created_at,
        )
