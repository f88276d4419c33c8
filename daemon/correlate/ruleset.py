"""The rules/ folder as one immutable set, and what it says about one alert.

`classify()` is the single place that decides an alert's service, rule, incident key, signature and
priority: the correlator uses it, and so do `itsmd explain` and `POST /api/v1/explain`, so an explanation
can never disagree with what the daemon does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.catalogue.services import Catalogue, Service, Target, load_catalogue
from daemon.correlate.matchers import match_all
from daemon.correlate.priority import Assessment, PriorityRules, load_priority_rules
from daemon.correlate.rules import CorrelationRules, ResolvedRule, load_correlation_rules
from daemon.drills.spec import Drill, DrillFile, check_drills
from daemon.errors import ConfigError, ConfigProblem

T = TypeVar("T")
RULE_FILES = ("services.yaml", "correlation.yaml", "priority.yaml", "drills.yaml")
"""correlation.yaml must exist in a rules folder; the others fall back to defaults (no drills) when absent."""


@dataclass(frozen=True)
class Classification:
    service: Service
    service_reason: str
    rule: ResolvedRule
    rule_reason: str
    key: str
    signature: str
    assessment: Assessment
    catalogue: Catalogue

    @property
    def priority(self) -> str:
        return self.assessment.priority

    @property
    def targets(self) -> Target:
        """Only needed when an incident opens or its priority rises, so not computed for every alert."""
        return self.catalogue.target(self.service, self.priority)


@dataclass(frozen=True)
class RuleSet:
    catalogue: Catalogue = field(default_factory=Catalogue)
    correlation: CorrelationRules = field(default_factory=CorrelationRules)
    priority: PriorityRules = field(default_factory=PriorityRules)
    rules: tuple[ResolvedRule, ...] = ()
    drills: tuple[Drill, ...] = ()
    """rules/drills.yaml: continuity drills (their runbooks are checked against the runbooks folder elsewhere)."""
    env: ImmutableSandboxedEnvironment = field(
        default_factory=lambda: ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    )
    templates: dict[str, Template] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.rules:
            object.__setattr__(self, "rules", self.correlation.resolved())

    def rule_for(self, labels: Mapping[str, str]) -> tuple[ResolvedRule, str]:
        for rule in self.rules[:-1]:
            if match_all(rule.matchers, labels):
                return rule, rule.why
        return self.rules[-1], "no rule matched: the defaults"

    def rule_named(self, name: str) -> ResolvedRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        return self.rules[-1]

    def classify(self, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> Classification:
        service, service_reason = self.catalogue.match(labels)
        rule, rule_reason = self.rule_for(labels)
        # `service` in group_by and signatures means the catalogue service, not the raw label.
        values = {**labels, "service": service.name}
        key = _key(rule.group_by, values)
        if rule.name != "default":
            key = f"{rule.name}:{key}"
        signature = _key(rule.recurrence.signature, values)
        assessment = self.priority.assess(labels, service.tier, service.name)
        return Classification(service, service_reason, rule, rule_reason, key, signature, assessment, self.catalogue)

    def title(self, c: Classification, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
        """The incident title (rendered only when an incident opens). Alert data reaches the template only as
        variables; a failing render falls back to a plain title."""
        service, priority = c.service.name, c.priority
        template = self.templates.get(c.rule.title)
        if template is None:  # compiled once per rule set: rendering runs in the ingest path
            template = self.templates[c.rule.title] = self.env.from_string(c.rule.title)
        try:
            text = template.render(
                labels=dict(labels), annotations=dict(annotations), service=service, priority=priority
            )
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            return f"{labels.get('alertname', 'alert')} on {service} (title template failed: {exc})"[:500]
        return " ".join(text.split())[:500] or f"{labels.get('alertname', 'alert')} on {service}"


def _key(names: tuple[str, ...], values: Mapping[str, str]) -> str:
    # encode_basestring_ascii is what json.dumps(str) returns, without the encoder set-up on every call.
    return "{" + ",".join(f"{n}={_quote(values.get(n, ''))}" for n in names) + "}"


_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def load_rules(folder: Path) -> RuleSet:
    """Every rule file of a folder, all problems of all files at once."""
    rules, problems = check_rules(folder)
    if problems or rules is None:
        raise ConfigError(problems)
    return rules


def check_rules(
    folder: Path, runbooks: Mapping[str, Collection[str]] | None = None
) -> tuple[RuleSet | None, list[ConfigProblem]]:
    """The rule set of a folder and the problems of each of its files. Each file is checked whatever the others
    hold: drills are checked against the catalogue only when services.yaml is valid (against an invalid one
    every drill would seem to name an unknown service), and against `runbooks` (name -> trigger.on) if given."""
    problems: list[ConfigProblem] = []

    def attempt(load: Callable[[Path], T], name: str, default: T) -> tuple[T, bool]:
        if name != "correlation.yaml" and not (folder / name).exists():
            return default, True
        try:
            return load(folder / name), True
        except ConfigError as exc:
            problems.extend(exc.problems)
            return default, False

    correlation, _ = attempt(load_correlation_rules, "correlation.yaml", CorrelationRules())
    catalogue, catalogue_valid = attempt(load_catalogue, "services.yaml", Catalogue())
    priority, _ = attempt(load_priority_rules, "priority.yaml", PriorityRules())
    services = catalogue.names() if catalogue_valid else None
    drills, _ = attempt(
        lambda path: check_drills(path, services=services, runbooks=runbooks), "drills.yaml", DrillFile()
    )
    if problems:
        return None, problems
    return RuleSet(catalogue, correlation, priority, drills=drills.drills), problems
