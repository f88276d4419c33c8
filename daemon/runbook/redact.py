"""Secret values out of everything a run stores or shows: step output, summaries and plans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "<redacted>"
_MIN_SECRET = 4
"""Shorter values are not masked: masking "1" or "on" would shred ordinary output and hide nothing."""


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = _ordered(secrets)

    def with_values(self, extra: Iterable[str]) -> Redactor:
        joined = Redactor()
        joined._secrets = _ordered([*self._secrets, *extra])
        return joined

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def _ordered(values: Iterable[str]) -> list[str]:
    # Longest first, so a secret that contains another is masked whole.
    return sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def cap(text: str, max_bytes: int) -> str:
    """At most max_bytes of UTF-8, cut at a character boundary, with a note when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore") + f"\n[cut at {max_bytes} of {len(raw)} bytes]"
