"""rules/priority.yaml: priority = impact x urgency (ITIL), P1 (most urgent) .. P5.

Impact comes from an alert's `impact` label when it names a level, otherwise from its service's tier;
urgency comes from its `severity` label through a mapping. The default matrix is ITIL's 3 x 3.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.yamlsource import Finding, load_yaml, raise_problems, validate

Level = Literal["high", "medium", "low"]
Priority = Literal["P1", "P2", "P3", "P4", "P5"]
LEVELS: tuple[Level, ...] = ("high", "medium", "low")
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4", "P5")

ITIL_MATRIX: dict[Level, dict[Level, Priority]] = {
    "high": {"high": "P1", "medium": "P2", "low": "P3"},
    "medium": {"high": "P2", "medium": "P3", "low": "P4"},
    "low": {"high": "P3", "medium": "P4", "low": "P5"},
}

DEFAULT_URGENCY: dict[str, Level] = {
    "critical": "high",
    "page": "high",
    "error": "high",
    "warning": "medium",
    "info": "low",
}


def rank(priority: str) -> int:
    """1 for P1 .. 5 for P5; lower is more urgent."""
    return int(priority[1:])


@dataclass(frozen=True, slots=True)
class Assessment:
    impact: Level
    impact_from: str
    urgency: Level
    urgency_from: str
    priority: Priority


class PriorityRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    impact_label: str = "impact"
    """An alert label that overrides its service's tier, when its value is high, medium or low."""
    urgency_label: str = "severity"
    urgency: dict[str, Level] = Field(default_factory=lambda: dict(DEFAULT_URGENCY))
    """Value of the urgency label -> urgency."""
    default_urgency: Level = "medium"
    """Urgency of alerts without the label or with a value not listed above."""
    matrix: dict[Level, dict[Level, Priority]] = Field(default_factory=lambda: ITIL_MATRIX)
    """impact -> urgency -> priority; every one of the nine cells must be given."""

    @model_validator(mode="after")
    def _complete(self) -> PriorityRules:
        raise_problems(self._missing())
        return self

    def _missing(self) -> Iterator[Finding]:
        for impact in LEVELS:
            row = self.matrix.get(impact)
            if row is None:
                message = f"impact {impact} is missing: give its row (urgency high, medium and low)"
                yield Finding(("matrix", impact), message)
                continue
            for urgency in LEVELS:
                if urgency not in row:
                    yield Finding(
                        ("matrix", impact, urgency),
                        f"is missing: give the priority (P1..P5) of impact {impact} at urgency {urgency}",
                    )

    def assess(self, labels: Mapping[str, str], tier: Level, service: str) -> Assessment:
        raw_impact = labels.get(self.impact_label, "").lower()
        if raw_impact in LEVELS:
            impact: Level = raw_impact
            impact_from = f"label {self.impact_label}={raw_impact}"
        else:
            impact = tier
            impact_from = f"tier of service {service}"
        raw_urgency = labels.get(self.urgency_label, "")
        if raw_urgency in self.urgency:
            urgency = self.urgency[raw_urgency]
            urgency_from = f"label {self.urgency_label}={raw_urgency}"
        else:
            urgency = self.default_urgency
            urgency_from = (
                f"default_urgency ({self.urgency_label}={raw_urgency!r} is not mapped)"
                if raw_urgency
                else f"default_urgency (no {self.urgency_label} label)"
            )
        return Assessment(impact, impact_from, urgency, urgency_from, self.matrix[impact][urgency])


def load_priority_rules(path: Path) -> PriorityRules:
    return validate(load_yaml(path), PriorityRules)
