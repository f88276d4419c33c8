"""Loading runbook files: schema validation with file:line:key errors, then the semantic checks."""

from __future__ import annotations

from pathlib import Path

from daemon.runbook.library import LoadedRunbook


def load_runbooks(folder: Path) -> list[LoadedRunbook]:
    raise NotImplementedError
