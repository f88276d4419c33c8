from __future__ import annotations

from daemon.model import Incident, IncidentStatus, Problem, ProblemStatus
from daemon.storage.database import Batch
from daemon.storage.incidents import INCIDENT, incident_row
from daemon.storage.problems import (
    LINK,
    UPSERT,
    load_problems,
    problem_exists,
    problem_row,
    read_problem,
    read_problems,
    status_counts,
)
from daemon.storage.sql import Backend

T0 = 1_800_000_000.0


def _problem(pid: int, status: ProblemStatus = ProblemStatus.CANDIDATE, **more: object) -> Problem:
    p = Problem(pid, f"sig{pid}", "api", f"Problem {pid}", status, T0 + pid, T0 + pid)
    for name, value in more.items():
        setattr(p, name, value)
    return p


def _write(backend: Backend, problems: list[Problem], links: list[tuple[int, int, float]]) -> None:
    batch = Batch()
    for iid in sorted({i for _, i, _ in links}):
        batch.upsert(INCIDENT, iid, incident_row(Incident(iid, f"k{iid}", "api", "t", IncidentStatus.OPEN, T0)))
    for p in problems:
        batch.upsert(UPSERT, p.id, problem_row(p))
    for link in links:
        batch.upsert(LINK, link[:2], link)
    backend.write(batch)


def test_unresolved_problems_load_with_their_incidents_in_link_order(sql_backend: Backend) -> None:
    known = _problem(1, ProblemStatus.KNOWN_ERROR, root_cause="disk", workaround="clean /tmp", runbook="clean")
    _write(
        sql_backend,
        [known, _problem(2, ProblemStatus.RESOLVED, resolved_at=T0 + 9)],
        [(1, 3, T0 + 2), (1, 1, T0 + 1), (1, 2, T0 + 2), (2, 4, T0)],
    )
    [loaded], next_id = load_problems(sql_backend.primary)
    assert next_id == 3
    assert problem_row(loaded) == problem_row(known)
    assert loaded.incidents == [1, 2, 3]


def test_a_link_is_written_once_and_an_upsert_updates_the_problem(sql_backend: Backend) -> None:
    _write(sql_backend, [_problem(1)], [(1, 1, T0)])
    changed = _problem(1, ProblemStatus.CONFIRMED, title="Renamed", updated_at=T0 + 50)
    _write(sql_backend, [changed], [(1, 1, T0 + 99)])  # the same link again: kept as first linked
    shown = read_problem(sql_backend.primary, 1)
    assert shown is not None
    assert (shown["status"], shown["title"], shown["updated_at"]) == (
        "confirmed",
        "Renamed",
        "2027-01-15T08:00:50.000Z",
    )
    assert shown["incidents"] == [1] and shown["incident_count"] == 1


def test_the_reads_page_filter_and_count_by_status(sql_backend: Backend) -> None:
    _write(
        sql_backend,
        [_problem(1), _problem(2, ProblemStatus.CONFIRMED), _problem(3), _problem(4, ProblemStatus.RESOLVED)],
        [(3, 5, T0), (3, 6, T0 + 1)],
    )
    reader = sql_backend.reader()
    try:
        assert [p["id"] for p in read_problems(reader, None, 10, 0)] == [4, 3, 2, 1]
        assert [p["id"] for p in read_problems(reader, "candidate", 1, 1)] == [1]
        [three] = read_problems(reader, None, 1, 1)
        assert three["incidents"] == [5, 6] and three["resolved_at"] is None
        assert status_counts(reader) == {"candidate": 2, "confirmed": 1, "known_error": 0, "resolved": 1}
        assert problem_exists(reader, 4) and not problem_exists(reader, 5)
        assert read_problem(reader, 5) is None
    finally:
        reader.close()
