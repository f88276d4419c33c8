"""Prometheus-style durations ("90s", "5m", "1h30m", "2d") for config files."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the accepted form."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, like 30s, 5m, 1h30m or 2d")
    return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))


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
        return float(value)
    raise ValueError("a duration is a string like 5m")


Duration = Annotated[float, BeforeValidator(_coerce)]
"""A config field holding seconds, written as "5m" or a number of seconds."""
