"""Prometheus-style durations ("90s", "5m", "1h30m", "2d") for config files."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_UNITS = {"y": 31536000.0, "w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Prometheus's own form: ASCII digits, units from largest to smallest, each at most once.
_FORM = re.compile("".join(f"(?:(?P<{u}>[0-9]+){u})?" for u in _UNITS))


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the accepted form."""
    match = _FORM.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, like 30s, 5m, 1h30m or 2d")
    return sum(int(n) * _UNITS[unit] for unit, n in match.groupdict().items() if n is not None)


def format_duration(seconds: float) -> str:
    rest = int(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def _coerce(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 5m, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    raise ValueError("a duration is a string like 5m")


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than 0s")
    return value


# What editors validate against (JSON Schema of runbooks): the string form or plain seconds.
_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": "^(" + "".join(f"([0-9]+{u})?" for u in _UNITS) + ")$"},
            {"type": "number", "minimum": 0},
        ]
    }
)

Duration = Annotated[float, BeforeValidator(_coerce), _SCHEMA]
"""A config field holding seconds, written as "5m" or a number of seconds; 0 or more."""

PositiveDuration = Annotated[float, BeforeValidator(_coerce), AfterValidator(_positive), _SCHEMA]
"""A Duration that must be longer than zero (timeouts, intervals)."""
