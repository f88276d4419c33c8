from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def process_state_restored() -> Iterator[None]:
    """`itsmd run` configures logging and the GIL switch interval; give both back to the other tests."""
    root = logging.getLogger()
    handlers, level, interval = list(root.handlers), root.level, sys.getswitchinterval()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.setswitchinterval(interval)
