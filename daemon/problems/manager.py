"""Problems: the only code that changes problem records.

When incidents of one signature recur `count` times within the rule's window, a problem is opened as a
candidate linking them; later incidents of the signature attach to it while it is not resolved. People move
it on: candidate -> confirmed -> known_error (root cause, workaround, optional runbook) -> resolved. A new
incident matching a known error carries its workaround.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.audit import SYSTEM, AuditLog
from daemon.correlate.rules import Recurrence
from daemon.errors import Conflict, InvalidInput, NotFound
from daemon.metrics.counters import CounterStore
from daemon.model import Incident, Problem, ProblemStatus
from daemon.storage.database import Batch
from daemon.storage.problems import LINK, UPSERT, problem_row
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

OPENED = "itsmd_problems_opened_total"
ACTIONS: dict[str, tuple[tuple[ProblemStatus, ...], ProblemStatus]] = {
    "confirm": ((ProblemStatus.CANDIDATE,), ProblemStatus.CONFIRMED),
    "known_error": ((ProblemStatus.CANDIDATE, ProblemStatus.CONFIRMED), ProblemStatus.KNOWN_ERROR),
    "resolve": ((ProblemStatus.CANDIDATE, ProblemStatus.CONFIRMED, ProblemStatus.KNOWN_ERROR), ProblemStatus.RESOLVED),
}
MAX_HISTORY = 1000
"""Incidents remembered per signature for recurrence counting."""


@dataclass(frozen=True, slots=True)
class Link:
    """What linking a new incident to a problem did."""

    problem: Problem
    opened: bool


def allowed_actions(status: ProblemStatus) -> list[str]:
    return [a for a, (sources, _) in ACTIONS.items() if status in sources]


def snapshot(p: Problem) -> dict[str, object]:
    return {
        "status": p.status.value,
        "root_cause": p.root_cause,
        "workaround": p.workaround,
        "runbook": p.runbook,
        "incidents": list(p.incidents),
    }


class Problems:
    def __init__(self, writer: GroupCommitWriter, counters: CounterStore, audit: AuditLog) -> None:
        self._writer = writer
        self._counters = counters
        self._audit = audit
        self._by_id: dict[int, Problem] = {}
        self._open_by_signature: dict[str, Problem] = {}
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._next_id = 1
        self._dirty: dict[int, Problem] = {}
        self._links: list[tuple[int, int, float]] = []
        self.listeners: list[Callable[[str, Problem, float], None]] = []
        """Hear (action, problem, now) when a problem opens ("opened") or moves on (the action), synchronously
        inside the change, so what they record lands in its commit (the webhook outbox)."""
        writer.add_collector(self._collect)

    def restore(self, problems: Sequence[Problem], next_id: int, history: Sequence[tuple[str, float, int]]) -> None:
        for problem in problems:
            self._by_id[problem.id] = problem
            self._open_by_signature[problem.signature] = problem
        self._next_id = next_id
        for signature, opened_at, incident_id in history:
            self._history.setdefault(signature, deque(maxlen=MAX_HISTORY)).append((opened_at, incident_id))

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, problem_id: int) -> Problem | None:
        """A problem not yet resolved (resolved ones leave memory)."""
        return self._by_id.get(problem_id)

    def problems(self) -> list[Problem]:
        return list(self._by_id.values())

    # -- changes --------------------------------------------------------------------------------------

    def prune(self, before: float) -> None:
        """Forget recurrence history older than `before` (the longest recurrence window ago)."""
        for signature in list(self._history):
            history = self._history[signature]
            while history and history[0][0] < before:
                history.popleft()
            if not history:
                del self._history[signature]

    def on_incident(
        self, incident: Incident, recurrence: Recurrence, now: float, metric_service: str | None = None
    ) -> Link | None:
        """Called by the correlator when an incident opens: attach it to its signature's problem, or open a
        candidate when the signature has recurred often enough."""
        signature = incident.signature
        problem = self._open_by_signature.get(signature)
        if problem is not None:
            self._link(problem, incident.id, now)
            return Link(problem, opened=False)
        history = self._history.setdefault(signature, deque(maxlen=MAX_HISTORY))
        history.append((incident.opened_at, incident.id))
        while history and history[0][0] < now - recurrence.window:
            history.popleft()
        if len(history) < recurrence.count:
            return None
        problem = Problem(
            id=self._next_id,
            signature=signature,
            service=incident.service,
            title=f"Recurring: {incident.title}",
            status=ProblemStatus.CANDIDATE,
            opened_at=now,
            updated_at=now,
        )
        self._next_id += 1
        self._by_id[problem.id] = problem
        self._open_by_signature[signature] = problem
        self._dirty[problem.id] = problem
        self._counters.inc(OPENED, (("service", metric_service or incident.service),))
        self._audit.record(
            now,
            SYSTEM,
            "problem",
            problem.id,
            "opened",
            before=None,
            after={
                **snapshot(problem),
                "signature": signature,
                "reason": f"{len(history)} incidents within {recurrence.window:.0f}s",
            },
        )
        for _, incident_id in list(history):
            self._link(problem, incident_id, now)
        history.clear()
        self._tell("opened", problem, now)
        return Link(problem, opened=True)

    def transition(
        self,
        problem_id: int,
        action: str,
        now: float,
        by: str,
        *,
        reason: str = "",
        root_cause: str | None = None,
        workaround: str | None = None,
        runbook: str | None = None,
        on_behalf_of: str | None = None,
    ) -> Problem:
        """Move a problem on; NotFound when it is not open, Conflict when the action is not allowed.
        `by` is the authenticated principal, `on_behalf_of` whom the request says it acts for."""
        problem = self._by_id.get(problem_id)
        if problem is None:
            raise NotFound("not_found", f"no open problem {problem_id}")
        if action not in ACTIONS:
            raise NotFound("not_found", f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        sources, target = ACTIONS[action]
        if problem.status not in sources:
            allowed = allowed_actions(problem.status)
            raise Conflict(
                "invalid_transition",
                f"problem {problem_id} is {problem.status.value}: cannot {action}; "
                f"allowed: {', '.join(allowed) or 'none'}",
            )
        before = snapshot(problem)
        if action == "known_error":
            if not root_cause or not workaround:
                raise InvalidInput("invalid_body", "known_error needs root_cause and workaround")
            problem.root_cause, problem.workaround, problem.runbook = root_cause, workaround, runbook
        elif root_cause:
            problem.root_cause = root_cause
        problem.status = target
        problem.updated_at = now
        if target is ProblemStatus.RESOLVED:
            problem.resolved_at = now
            del self._by_id[problem.id]
            if self._open_by_signature.get(problem.signature) is problem:
                del self._open_by_signature[problem.signature]
        self._dirty[problem.id] = problem
        behalf = {"on_behalf_of": on_behalf_of} if on_behalf_of else {}
        self._audit.record(
            now,
            by,
            "problem",
            problem.id,
            action,
            before=before,
            after={**snapshot(problem), "reason": reason, **behalf},
        )
        self._tell(action, problem, now)
        return problem

    def _tell(self, action: str, problem: Problem, now: float) -> None:
        for listener in self.listeners:
            try:
                listener(action, problem, now)
            except Exception:
                # A listener's bug must not lose the change that caused the event.
                log.exception("problem listener failed on %s of problem %d", action, problem.id)

    def _link(self, problem: Problem, incident_id: int, now: float) -> None:
        if incident_id in problem.incidents:
            return
        before = snapshot(problem)
        problem.incidents.append(incident_id)
        problem.updated_at = now
        self._dirty[problem.id] = problem
        self._links.append((problem.id, incident_id, now))
        self._audit.record(
            now, SYSTEM, "problem", problem.id, "incident_linked", before=before, after=snapshot(problem)
        )

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for problem in self._dirty.values():
            batch.upsert(UPSERT, problem.id, problem_row(problem))
        for link in self._links:
            batch.append(LINK, link)
        self._dirty.clear()
        self._links.clear()
