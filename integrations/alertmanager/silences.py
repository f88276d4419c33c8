"""Silences as Alertmanager's v2 API takes them: matchers, times, and the ``POST /api/v2/silences`` body."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Alertmanager 0.25 label names (the classic Prometheus form)."""
SILENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""What an id must look like before it goes into a URL path (Alertmanager hands out UUIDs)."""


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def __post_init__(self) -> None:
        if not LABEL_NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a label name (letters, digits and _, not starting with a digit)")

    def as_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    def __str__(self) -> str:
        op = ("=" if self.is_equal else "!=") if not self.is_regex else ("=~" if self.is_equal else "!~")
        return f"{self.name}{op}{self.value!r}"


def check_matchers(matchers: Sequence[SilenceMatcher]) -> None:
    """Alertmanager refuses a silence that could match every alert; say so before asking it.

    The regex case is left to Alertmanager (Go's RE2 is not Python's ``re``).
    """
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if all(m.is_equal and not m.is_regex and m.value == "" for m in matchers):
        raise ValueError("at least one matcher must not match the empty string")


def check_silence_id(silence_id: str) -> str:
    if not SILENCE_ID.match(silence_id):
        raise ValueError(f"{silence_id[:80]!r} is not a silence id")
    return silence_id


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def silence_body(
    matchers: Sequence[SilenceMatcher], *, starts_at: float, ends_at: float, created_by: str, comment: str
) -> dict[str, Any]:
    check_matchers(matchers)
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    if not created_by.strip() or not comment.strip():
        raise ValueError("Alertmanager needs a non-empty createdBy and comment")
    return {
        "matchers": [m.as_api() for m in matchers],
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at),
        "createdBy": created_by,
        "comment": comment,
    }
