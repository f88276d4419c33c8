"""The loaded runbooks by name, and which of them an incident event triggers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.correlate.events import IncidentEvent
from daemon.runbook.spec import RunbookFields


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
