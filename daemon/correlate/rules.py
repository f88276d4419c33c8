"""rules/correlation.yaml: how alerts are grouped into incidents, when they flap, when incidents recur.

Top-level settings are the defaults of every rule. `rules:` are tried in order; the first whose matchers
all match an alert decides its incident key (`group_by`), windows, title and signature. An alert no rule
matches gets the defaults (the rule named "default").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.correlate.matchers import Matchers
from daemon.durations import Duration, PositiveDuration
from daemon.yamlsource import Finding, load_yaml, raise_problems, validate

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
DEFAULT_TITLE = "{{ labels.alertname | default('alert') }} on {{ service }}"


def _label_names(value: tuple[str, ...]) -> tuple[str, ...]:
    found: list[Finding] = []
    for i, name in enumerate(value):
        if not _LABEL_NAME.fullmatch(name):
            found.append(Finding((i,), f"{name!r} is not a label name (letters, digits and _, not first a digit)"))
        elif name in value[:i]:
            found.append(Finding((i,), f"{name!r} is listed twice"))
    raise_problems(found)
    return value


def check_template(value: str) -> str:
    try:
        ImmutableSandboxedEnvironment().parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"invalid template (line {exc.lineno} of the template): {exc.message}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Flapping(_Strict):
    """An alert flaps when it changed state (fired or ended) at least `enter` times within `window`; it stops
    flapping when at most `leave` changes remain in the window. A flapping alert's incident stays open."""

    window: PositiveDuration = 900.0
    enter: int = Field(default=6, ge=2)
    leave: int = Field(default=2, ge=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _hysteresis(self) -> Flapping:
        if self.leave >= self.enter:
            message = f"must be lower than enter ({self.enter}), or an alert never stops flapping"
            raise_problems([Finding(("leave",), message, uses=(("enter",),))])
        return self


class Recurrence(_Strict):
    """`count` incidents of one signature within `window` open a candidate problem."""

    count: int = Field(default=3, ge=2)
    window: PositiveDuration = 7 * 86400.0
    signature: tuple[str, ...] = Field(default=("alertname", "service"), min_length=1)
    """Labels whose values identify "the same" incident; `service` is the catalogue service."""

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _label_names(value)


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    matchers: Matchers = ()
    group_by: tuple[str, ...] | None = None
    window: Duration | None = None
    reopen_window: Duration | None = None
    title: str | None = None
    flapping: Flapping | None = None
    recurrence: Recurrence | None = None

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("list at least one label")
            _label_names(value)
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return check_template(value) if value is not None else None


class CorrelationRules(_Strict):
    group_by: tuple[str, ...] = Field(default=("alertname", "service"), min_length=1)
    """Alerts with the same values of these labels belong to one incident (`service`: the catalogue's)."""
    window: Duration = 86400.0
    """A firing alert joins the open incident of its key only if that incident took an alert this recently;
    otherwise it opens a new incident. 0: no limit."""
    reopen_window: Duration = 1800.0
    """A firing alert this soon after its incident resolved reopens it instead of opening a new one."""
    close_after: Duration = 86400.0
    """A resolved incident closes after this long without reopening (not shorter than reopen_window)."""
    title: str = DEFAULT_TITLE
    """Sandboxed Jinja2 over `labels`, `annotations`, `service` and `priority` of the first alert."""
    flapping: Flapping = Flapping()
    recurrence: Recurrence = Recurrence()
    rules: tuple[Rule, ...] = ()

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _label_names(value)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return check_template(value)

    @model_validator(mode="after")
    def _consistent(self) -> CorrelationRules:
        raise_problems(self._problems())
        return self

    def _problems(self) -> Iterator[Finding]:
        first: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            where = ("rules", i, "name")
            if rule.name == "default":
                yield Finding(where, "'default' is the rule of alerts no rule matches: choose another name")
            elif rule.name in first:
                also = ("rules", first[rule.name])
                yield Finding(where, f"rule name {rule.name!r} is already used by {{also}}", also=also)
            first.setdefault(rule.name, i)
        if self.close_after < self.reopen_window:
            yield Finding(
                ("close_after",),
                f"{self.close_after:g}s is shorter than reopen_window ({self.reopen_window:g}s): closed incidents "
                "could not reopen; make close_after at least reopen_window",
                uses=(("reopen_window",),),
            )
        for i, rule in enumerate(self.rules):
            if rule.reopen_window is not None and self.close_after < rule.reopen_window:
                yield Finding(
                    ("rules", i, "reopen_window"),
                    f"{rule.reopen_window:g}s is longer than close_after ({self.close_after:g}s): closed incidents "
                    "could not reopen; shorten it or raise close_after",
                    uses=(("close_after",),),
                )

    def resolved(self) -> tuple[ResolvedRule, ...]:
        """Every rule with the defaults filled in, then the default rule."""
        out = [self._resolve(r) for r in self.rules]
        out.append(self._resolve(Rule(name="default")))
        return tuple(out)

    def _resolve(self, rule: Rule) -> ResolvedRule:
        return ResolvedRule(
            name=rule.name,
            matchers=rule.matchers,
            group_by=rule.group_by or self.group_by,
            window=self.window if rule.window is None else rule.window,
            reopen_window=self.reopen_window if rule.reopen_window is None else rule.reopen_window,
            title=rule.title or self.title,
            flapping=rule.flapping or self.flapping,
            recurrence=rule.recurrence or self.recurrence,
        )


class ResolvedRule(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    name: str
    matchers: Matchers
    group_by: tuple[str, ...]
    window: float
    reopen_window: float
    title: str
    flapping: Flapping
    recurrence: Recurrence

    @cached_property
    def why(self) -> str:
        """Why an alert gets this rule (for explain); built once."""
        return f"matchers {', '.join(str(m) for m in self.matchers) or '(none)'}"


def load_correlation_rules(path: Path) -> CorrelationRules:
    return validate(load_yaml(path), CorrelationRules)
