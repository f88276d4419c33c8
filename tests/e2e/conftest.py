"""Session-wide end-to-end harness: one stack (target, Alertmanager, Prometheus, itsmd) for all e2e tests.

The stack starts on first use, so a run that selects no e2e test starts nothing. The first failed test
gets the tail of every process's log attached to its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from .stack import Binaries, MissingBinary, Stack

_STACK = pytest.StashKey[Stack]()
_TAILS_SHOWN = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Stack]:
    """The running stack; it is stopped (everything, whatever happened) at the end of the session."""
    try:
        binaries = Binaries.find()
    except MissingBinary as exc:  # CI installs them: a missing binary fails the run, it is not a skip
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    running = Stack(tmp_path_factory.mktemp("e2e-stack"), binaries)
    pytestconfig.stash[_STACK] = running
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    running = item.config.stash.get(_STACK, None)
    if report.failed and running is not None and "stack" in getattr(item, "fixturenames", ()):
        if item.config.stash.get(_TAILS_SHOWN, False):  # later failures are mostly consequences
            report.sections.append(("e2e logs", f"see the first failure for log tails; full logs in {running.logs}"))
        else:
            item.config.stash[_TAILS_SHOWN] = True
            for name, tail in running.log_tails():
                report.sections.append((f"log tail: {name}", tail))
    return report
