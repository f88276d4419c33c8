"""rules/services.yaml: the service catalogue.

Every alert maps to exactly one service: the first listed service whose matchers all match (a service
without matchers matches alerts whose service label equals its name), otherwise the default service.
Alerts are never dropped for matching no service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.catalogue.windows import MaintenanceWindow
from daemon.correlate.matchers import Matchers, match_all
from daemon.correlate.priority import PRIORITIES, Level, Priority
from daemon.durations import PositiveDuration
from daemon.yamlsource import Finding, load_yaml, raise_problems, validate

_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """Response and resolution targets of one priority; absent means none (P5 "by agreement")."""

    respond: PositiveDuration | None = None
    resolve: PositiveDuration | None = None


DEFAULT_TARGETS: dict[Priority, Target] = {
    "P1": Target(respond=15 * 60.0, resolve=4 * 3600.0),
    "P2": Target(respond=30 * 60.0, resolve=8 * 3600.0),
    "P3": Target(respond=4 * 3600.0, resolve=24 * 3600.0),
    "P4": Target(respond=86400.0, resolve=5 * 86400.0),
    "P5": Target(),
}


class DowntimePolicy(_Strict):
    """Which incidents of a service count as downtime: those whose priority is listed and, when matchers are
    given, whose opening alert matches them all. An outage runs from the incident's opening (or reopening) to
    its resolution; if its priority rises into the list while open, it counts from that opening."""

    priorities: tuple[Priority, ...] = ("P1", "P2")
    matchers: Matchers = ()

    def counts(self, priority: str, labels: Mapping[str, str]) -> bool:
        return priority in self.priorities and match_all(self.matchers, labels)


class Service(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    owner: str = ""
    team: str = ""
    tier: Level = "medium"
    """Impact of this service's incidents: high, medium or low."""
    matchers: Matchers = ()
    """All must match; none given: the service label equals the name."""
    availability_objective: float | None = Field(default=None, gt=0, le=1)
    """For example 0.999."""
    targets: dict[Priority, Target] = Field(default_factory=dict)
    """Per-priority overrides of the catalogue's default targets; a field left out keeps the default."""
    maintenance: tuple[MaintenanceWindow, ...] = ()
    """Planned downtime: outage time inside these windows is not held against the availability objective."""
    downtime: DowntimePolicy = DowntimePolicy()

    @cached_property
    def why(self) -> str:
        """Why an alert maps here (for explain); built once."""
        return f"matchers {', '.join(str(m) for m in self.matchers)}"


class Catalogue(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    service_label: str = Field(default="service", pattern=_LABEL_NAME)
    default_service: str = Field(default="unknown", min_length=1, max_length=128)
    """Service of alerts no listed service matches. May itself be listed, to give it a tier and targets;
    otherwise it has tier `default_tier` and the default targets."""
    default_tier: Level = "medium"
    default_availability_objective: float = Field(default=0.999, gt=0, le=1)
    """Objective of services that set no availability_objective (and of the default service)."""
    targets: dict[Priority, Target] = Field(default_factory=lambda: dict(DEFAULT_TARGETS))
    """Default targets per priority; a priority left out keeps the built-in default."""
    pause_statuses: tuple[str, ...] = ()
    """Incident statuses during which SLA clocks stop (for example acknowledged, if your SLA says so)."""
    services: tuple[Service, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        raise_problems(self._problems())
        return self

    def _problems(self) -> Iterator[Finding]:
        first: dict[str, int] = {}
        for i, service in enumerate(self.services):
            if service.name in first:
                yield Finding(
                    ("services", i, "name"),
                    f"service {service.name!r} is already listed as {{also}}: merge the two or rename one",
                    also=("services", first[service.name]),
                )
            first.setdefault(service.name, i)
        for i, status in enumerate(self.pause_statuses):
            if status not in ("open", "acknowledged"):
                message = f"{status!r} is not a status that can pause a clock: use open or acknowledged"
                yield Finding(("pause_statuses", i), message)

    def names(self) -> list[str]:
        """Every service an incident can have: the listed ones and the default."""
        names = [s.name for s in self.services]
        if self.default_service not in names:
            names.append(self.default_service)
        return names

    def get(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        return Service(name=self.default_service, tier=self.default_tier)

    def match(self, labels: Mapping[str, str]) -> tuple[Service, str]:
        """The service of an alert, and why."""
        for service in self.services:
            if service.matchers:
                if match_all(service.matchers, labels):
                    return service, service.why
            elif labels.get(self.service_label) == service.name:
                return service, f"label {self.service_label}={service.name}"
        reason = "no service matched: default_service"
        return self.get(self.default_service), reason

    def objective(self, service: Service) -> float:
        return service.availability_objective or self.default_availability_objective

    def target(self, service: Service, priority: str) -> Target:
        key = (service.name, priority)
        found = self._target_cache.get(key)
        if found is None:
            found = self._target_cache[key] = self._target(service, priority)
        return found

    @cached_property
    def _target_cache(self) -> dict[tuple[str, str], Target]:
        return {}

    def _target(self, service: Service, priority: str) -> Target:
        targets: dict[str, Target] = {str(k): v for k, v in self.targets.items()}
        overrides: dict[str, Target] = {str(k): v for k, v in service.targets.items()}
        defaults: dict[str, Target] = {str(k): v for k, v in DEFAULT_TARGETS.items()}
        base = targets.get(priority) or defaults.get(priority) or Target()
        override = overrides.get(priority)
        if override is None:
            return base
        return Target(
            respond=override.respond if "respond" in override.model_fields_set else base.respond,
            resolve=override.resolve if "resolve" in override.model_fields_set else base.resolve,
        )


def load_catalogue(path: Path) -> Catalogue:
    return validate(load_yaml(path), Catalogue)


__all__ = ["PRIORITIES", "Catalogue", "DowntimePolicy", "Service", "Target", "load_catalogue"]
