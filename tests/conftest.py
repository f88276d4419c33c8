"""Fixtures every test package may use, and the backend the suite runs on (ITSMD_TEST_BACKEND).

`--backend-reach FILE` lets the second pass (PostgreSQL) leave out what the first (SQLite) showed it would
only repeat: the SQLite pass writes to FILE the tests that passed without once asking for a store on the
backend under test (tests/postgres.py counts every such request); the PostgreSQL pass deselects exactly
those. Such a test builds its stores itself (an SQLite file, or both backends by parameter) and so does the
same thing in both passes. A request counts for the test that made it, and for every test sharing one of
its module, class, package or session fixtures of this project, whether the request was made in that
fixture's setup or in a test using it: a daemon one test starts on a shared fixture serves the next test
too (tests/e2e/test_alert_lifecycle.py's steps). A test the first pass did not run, did not pass, or saw
reach the backend runs again.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import postgres
from tests.postgres import ON_POSTGRES, _backend_databases, _backend_databases_session, postgres_dsn

__all__ = ["_backend_databases", "_backend_databases_session", "postgres_dsn"]
pytest_plugins = ["pytester"]

_REACH_FILE = pytest.StashKey[Path]()
_reaching_fixtures: set[Any] = set()
"""The shared fixture definitions of this project that a test using them, or their own setup, reached the
backend under test through."""
_reached: set[str] = set()
_passed: set[str] = set()
_shared_fixtures: dict[str, list[Any]] = {}
"""Each test's shared fixture definitions of this project, by node id."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend-reach",
        metavar="FILE",
        type=Path,
        help="SQLite pass: write the tests that never reached the backend under test to FILE; "
        "PostgreSQL pass: leave those out (scripts/test.sh)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if (path := config.getoption("--backend-reach")) is not None:
        config.stash[_REACH_FILE] = path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, tests about the SQLite file itself are skipped, with the reason they give; with
    --backend-reach, those the SQLite pass showed to be backend-independent are deselected."""
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is None:
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else None)
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs a reason (why it is about the SQLite file)")
        if ON_POSTGRES:
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only: {reason}"))
    if not ON_POSTGRES or _REACH_FILE not in config.stash:
        return
    path = config.stash[_REACH_FILE]
    try:
        independent = set(json.loads(path.read_text(encoding="utf-8"))["backend_independent"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise pytest.UsageError(f"--backend-reach {path}: {exc} (run the SQLite pass with it first)") from exc
    dropped = [i for i in items if i.nodeid in independent and i.get_closest_marker("replicas") is None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = {id(i) for i in dropped}
        items[:] = [i for i in items if id(i) not in gone]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    before = postgres.reaches
    try:
        return (yield)
    finally:
        shared = _shared_fixtures[item.nodeid] = list(_project_shared_fixtures(item))
        if postgres.reaches != before:
            _reached.add(item.nodeid)
            _reaching_fixtures.update(shared)


def _project_shared_fixtures(item: pytest.Item) -> Iterator[Any]:
    """The item's fixtures wider than one test, defined in a conftest or test module (not a plugin's, as
    pytest's tmp_path_factory, which every test shares; nor tests/postgres.py's bookkeeping, which every
    test uses)."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for d in defs:
            if d.scope != "function" and d.baseid and getattr(d.func, "__module__", "") != postgres.__name__:
                yield d


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        _passed.add(report.nodeid)
    elif report.failed or report.skipped:
        _passed.discard(report.nodeid)
        _reached.add(report.nodeid)  # never left out: the other pass decides about it itself


def pytest_sessionfinish(session: pytest.Session) -> None:
    if ON_POSTGRES or _REACH_FILE not in session.config.stash:
        return
    independent = sorted(
        n for n in _passed - _reached if not any(d in _reaching_fixtures for d in _shared_fixtures.get(n, ()))
    )
    session.config.stash[_REACH_FILE].write_text(
        json.dumps({"backend_independent": independent}, indent=0), encoding="utf-8"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"itsmd storage backend under test: {'postgres' if ON_POSTGRES else 'sqlite'} (ITSMD_TEST_BACKEND)"
