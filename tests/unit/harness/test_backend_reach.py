"""--backend-reach (tests/conftest.py): the PostgreSQL pass leaves out exactly the tests the SQLite pass saw
pass without asking for a store on the backend under test. Run as real nested pytest sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

SUITE = """
import pytest
from tests.postgres import storage_section


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return storage_section(tmp_path_factory.mktemp("shared"))


def test_builds_its_own_store(tmp_path):
    assert tmp_path.is_dir()


def test_asks_for_the_backend(tmp_path):
    storage_section(tmp_path)


def test_module_fixture_first(shared):
    pass


def test_module_fixture_second(shared):
    pass


@pytest.fixture(scope="module")
def daemon_box():
    return {}


def test_starts_a_daemon_on_a_shared_fixture(daemon_box, tmp_path):
    daemon_box["storage"] = storage_section(tmp_path)


def test_uses_the_daemon_another_test_started(daemon_box):
    assert "storage" in daemon_box


@pytest.mark.parametrize("ok", [True, False])
def test_fails_once(ok):
    assert ok


@pytest.mark.skip(reason="the case under test: a test skipped on the first pass runs on the second")
def test_skipped():
    pass
"""


@pytest.fixture
def nested(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_the_postgres_pass_leaves_out_what_never_reached_the_backend(
    nested: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With `=`: a path given as its own argument would take part in finding pytest's rootdir (node ids).
    reach = tmp_path / "reach.json"
    monkeypatch.setenv("ITSMD_TEST_BACKEND", "sqlite")
    first = nested.runpytest_subprocess("-p", "tests.conftest", "-p", "no:randomly", f"--backend-reach={reach}")
    first.assert_outcomes(passed=7, failed=1, skipped=1)
    # A module fixture that asked once, or a test using it that asked, counts for every test using it (the
    # second test works on the daemon the first one started); failed and skipped tests run again.
    assert json.loads(reach.read_text())["backend_independent"] == [
        "test_suite.py::test_builds_its_own_store",
        "test_suite.py::test_fails_once[True]",
    ]

    monkeypatch.setenv("ITSMD_TEST_BACKEND", "postgres")
    second = nested.runpytest_subprocess("-p", "tests.conftest", "-p", "no:randomly", f"--backend-reach={reach}")
    second.assert_outcomes(passed=5, failed=1, skipped=1, deselected=2)


def test_the_postgres_pass_refuses_a_missing_reach_file(
    nested: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ITSMD_TEST_BACKEND", "postgres")
    found = nested.runpytest_subprocess("-p", "tests.conftest", f"--backend-reach={tmp_path / 'none.json'}")
    assert found.ret == pytest.ExitCode.USAGE_ERROR
    found.stderr.fnmatch_lines(["*--backend-reach*none.json*run the SQLite pass with it first*"])
