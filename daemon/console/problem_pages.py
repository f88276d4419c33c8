"""The console's problem pages: the list (by status, with counts) and one problem, with its actions.

Reads are the committed rows, as the API's; changes go through the problem manager exactly as
`daemon.api.manage.problem_action` does (same calls, same errors), and answer once durable.
"""

from __future__ import annotations

from aiohttp import web

from daemon.api import keys
from daemon.api.errors import status_of
from daemon.api.manage import require_open_problem
from daemon.console.auth import require_session, require_write
from daemon.console.pages import _answer, _durable
from daemon.console.record_views import problem_row, when
from daemon.console.render import page
from daemon.errors import InvalidInput, RequestError
from daemon.model import ProblemStatus
from daemon.problems.manager import ACTIONS, allowed_actions
from daemon.storage.problems import read_problem, read_problems, status_counts

PAGE_SIZE = 100
STATUS_FILTERS = (*(s.value for s in ProblemStatus), "all")
MAX_TEXT = 16000


def _problem_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 13:
        raise web.HTTPNotFound(text=f"no problem {raw}")
    return int(raw)


async def list_problems(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    status = request.query.get("status", "all")
    problems: list[str] = []
    if status not in STATUS_FILTERS:
        problems.append(f"status {status[:40]!r} is not one of {', '.join(STATUS_FILTERS)}")
        status = "all"
    reader = request.app[keys.READER]
    found = await reader.run(read_problems, None if status == "all" else status, PAGE_SIZE, 0)
    counts = await reader.run(status_counts)
    return page(
        request,
        "problems.html.j2",
        session,
        title="Problems",
        problems=[problem_row(p) for p in found],
        counts=counts,
        total=sum(counts.values()),
        status=status,
        statuses=STATUS_FILTERS,
        notes=problems,
    )


async def show_problem(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    problem_id = _problem_id(request)
    found = await request.app[keys.READER].run(read_problem, problem_id)
    if found is None:
        raise web.HTTPNotFound(text=f"no problem {problem_id}")
    status = ProblemStatus(found["status"])
    may = session.principal.may("responder")
    return page(
        request,
        "problem.html.j2",
        session,
        title=f"Problem {problem_id} {found['title']}",
        problem={**problem_row(found), **found, "opened": when(found.get("opened_at"))},
        resolved=when(found.get("resolved_at")),
        allowed=allowed_actions(status) if may else [],
        runbooks=request.app[keys.ENGINE].library.names(),
    )


async def act_on_problem(request: web.Request) -> web.StreamResponse:
    session, form = await require_write(request, "responder")
    problem_id = _problem_id(request)
    back = f"/problems/{problem_id}"
    action = str(form.get("action", ""))

    def text(name: str) -> str | None:
        value = str(form.get(name, "")).strip()[:MAX_TEXT]
        return value or None

    pipeline = request.app[keys.PIPELINE]
    problems = pipeline.correlator.problems
    try:
        if action not in ACTIONS:
            raise InvalidInput("invalid_body", f"unknown action {action[:40]!r}; known: {', '.join(ACTIONS)}")
        await require_open_problem(request, problem_id)
        problems.transition(
            problem_id,
            action,
            pipeline.clock.now(),
            session.principal.name,
            reason=str(form.get("reason", ""))[:4000],
            root_cause=text("root_cause"),
            workaround=text("workaround"),
            runbook=text("runbook"),
        )
    except RequestError as exc:
        return _answer(request, session, back, exc.message, ok=False, status=status_of(exc))
    await _durable(request)
    done = {"confirm": "confirmed", "known_error": "recorded as a known error", "resolve": "resolved"}[action]
    return _answer(request, session, back, f"problem {problem_id} {done}", ok=True)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/problems", list_problems)
    app.router.add_get("/problems/{id}", show_problem)
    app.router.add_post("/problems/{id}/act", act_on_problem)
