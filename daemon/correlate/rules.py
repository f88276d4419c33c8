"""rules/correlation.yaml: how alerts are grouped into incidents."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from daemon.durations import Duration
from daemon.yamlsource import load_yaml, validate

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class CorrelationRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group_by: tuple[str, ...] = Field(default=("alertname", "service"), min_length=1)
    """Alerts with the same values of these labels belong to one incident."""
    reopen_window: Duration = 1800.0
    """A firing alert this soon after its incident resolved reopens it instead of opening a new one."""
    service_label: str = "service"
    """The label that names the service an incident is about."""
    default_service: str = "unknown"
    """The service of alerts that carry no service label."""

    @field_validator("group_by")
    @classmethod
    def _label_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a label name")
        if len(set(value)) != len(value):
            raise ValueError("a label is listed twice")
        return value

    @field_validator("service_label")
    @classmethod
    def _service_label(cls, value: str) -> str:
        if not _LABEL_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a label name")
        return value


def load_correlation_rules(path: Path) -> CorrelationRules:
    return validate(load_yaml(path), CorrelationRules)
