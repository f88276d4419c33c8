"""The loaded runbooks by name, and which of them an incident event triggers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.correlate.events import IncidentEvent
from daemon.runbook.spec import RunbookFields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedRunbook:
    spec: RunbookFields
    version: str
    """sha256 of the file's bytes."""
    file: str


@dataclass
class RunbookLibrary:
    runbooks: dict[str, LoadedRunbook] = field(default_factory=dict)

    @classmethod
    def of(cls, runbooks: Iterable[LoadedRunbook]) -> RunbookLibrary:
        return cls({rb.spec.name: rb for rb in runbooks})

    @classmethod
    def load_dir(cls, folder: Path) -> RunbookLibrary:
        """Every runbook file in folder; ConfigError listing every problem of every file."""
        from daemon.runbook.check import load_runbooks  # noqa: PLC0415 - check imports this module

        return cls.of(load_runbooks(folder))

    @classmethod
    def load_configured(cls, folder: Path) -> RunbookLibrary:
        """The runbooks of the configured folder; none when it does not exist (logged)."""
        if not folder.is_dir():
            log.info("no runbooks folder at %s: no runbooks loaded", folder)
            return cls()
        return cls.load_dir(folder)

    def replace(self, newer: RunbookLibrary) -> None:
        """Swap in reloaded runbooks. In place, because the engine, triggers and metrics hold this object;
        runs already started keep the runbook version they were built from."""
        self.runbooks = dict(newer.runbooks)

    def get(self, name: str) -> LoadedRunbook | None:
        return self.runbooks.get(name)

    def names(self) -> list[str]:
        return sorted(self.runbooks)

    def matching(self, event: IncidentEvent) -> list[LoadedRunbook]:
        """Runbooks whose trigger matches the event, by name."""
        from daemon.runbook.triggering import trigger_matches  # noqa: PLC0415

        return [rb for _, rb in sorted(self.runbooks.items()) if trigger_matches(rb.spec, event)]

    def as_mapping(self) -> Mapping[str, LoadedRunbook]:
        return self.runbooks
