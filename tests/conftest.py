"""Fixtures every test package may use, and the backend the suite runs on (ITSMD_TEST_BACKEND)."""

import pytest

from tests.postgres import ON_POSTGRES, _backend_databases, _backend_databases_session, postgres_dsn

__all__ = ["_backend_databases", "_backend_databases_session", "postgres_dsn"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, tests about the SQLite file itself are skipped, with the reason they give."""
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is None:
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else None)
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs a reason (why it is about the SQLite file)")
        if ON_POSTGRES:
            item.add_marker(pytest.mark.skip(reason=f"sqlite_only: {reason}"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"itsmd storage backend under test: {'postgres' if ON_POSTGRES else 'sqlite'} (ITSMD_TEST_BACKEND)"
