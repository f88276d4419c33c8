"""A run's params: taken from what the caller gave, checked against each param's pattern."""

from __future__ import annotations

import re
from collections.abc import Mapping

from daemon.runbook.errors import RunRefused
from daemon.runbook.spec import RunbookFields

_VALUE_ECHO = 80


def resolve_params(spec: RunbookFields, given: Mapping[str, str], *, by_label: bool) -> dict[str, str]:
    """Each declared param from `given` (by name; on triggered runs also by its label), or its default;
    every value must match the param's pattern. RunRefused names the param and the pattern."""
    if not by_label:
        unknown = sorted(set(given) - set(spec.params))
        if unknown:
            known = ", ".join(sorted(spec.params)) or "none"
            raise RunRefused("unknown_param", f"runbook {spec.name} has no param {unknown[0]!r} (params: {known})")
    out: dict[str, str] = {}
    for name, param in spec.params.items():
        label = param.label or name
        if name in given:
            value = given[name]
        elif by_label and label in given:
            value = given[label]
        elif param.default is not None:
            value = param.default
        elif param.required:
            source = f" (from label {label!r})" if by_label else ""
            raise RunRefused("missing_param", f"param {name}{source} is required and has no default")
        else:
            out[name] = ""
            continue
        if not isinstance(value, str) or re.fullmatch(param.pattern, value) is None:
            shown = repr(value)[:_VALUE_ECHO]
            raise RunRefused("bad_param", f"param {name}={shown} does not match its pattern {param.pattern}")
        out[name] = value
    return out
