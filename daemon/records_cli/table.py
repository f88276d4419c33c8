"""Aligned tables and key/value blocks for people; colour only on a terminal that wants it.

Every value shown comes from the API, and much of it from alerts (titles, labels): control characters are
replaced before printing, so an alert cannot move the cursor, clear the screen or fake other lines.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RED, YELLOW, GREEN, DIM, BOLD = "31", "33", "32", "2", "1"


def clean(value: object) -> str:
    """One line of printable text: control characters (ESC included) become a visible '?'."""
    if value is None:
        return "-"
    return _CONTROL.sub("?", str(value))


def width(text: str) -> int:
    """Display columns: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


@dataclass(frozen=True)
class Style:
    """Whether to colour: only on a terminal, never with NO_COLOR set (https://no-color.org)."""

    colour: bool

    @classmethod
    def for_stream(cls, out: TextIO, env: Mapping[str, str] | None = None) -> Style:
        env = os.environ if env is None else env
        isatty = getattr(out, "isatty", None)
        return cls(bool(isatty and isatty()) and "NO_COLOR" not in env and env.get("TERM") != "dumb")

    def paint(self, text: str, code: str | None) -> str:
        if not self.colour or code is None or not text:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"


Cell = tuple[str, str | None]
"""Text and its colour code (None: plain)."""


def render(
    headers: Sequence[str], rows: Sequence[Sequence[Cell]], style: Style, out: TextIO, *, limit: int = 60
) -> None:
    """Columns padded to their widest cell; the last column is not padded and is cut at `limit` columns."""
    texts = [[_cut(clean(text), limit) for text, _ in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], width(text))
    last = len(headers) - 1
    print("  ".join(style.paint(_pad(h, widths[i], i == last), BOLD) for i, h in enumerate(headers)), file=out)
    for row, cells in zip(texts, rows, strict=True):
        line = "  ".join(style.paint(_pad(text, widths[i], i == last), cells[i][1]) for i, text in enumerate(row))
        print(line.rstrip(), file=out)


def block(pairs: Sequence[tuple[str, object]], style: Style, out: TextIO) -> None:
    """`key: value` lines with the keys aligned."""
    pad = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        print(f"{style.paint(key.ljust(pad), BOLD)}  {clean(value)}", file=out)


def _pad(text: str, to: int, last: bool) -> str:
    return text if last else text + " " * (to - width(text))


def _cut(text: str, limit: int) -> str:
    if width(text) <= limit:
        return text
    out = ""
    for ch in text:
        if width(out + ch) > limit - 1:
            break
        out += ch
    return out + "…"


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def span(seconds: float) -> str:
    """A duration as people read it on call: 45s, 12m, 3h05m, 2d04h."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def age(value: object, now: datetime) -> str:
    at = parse_time(value)
    return "-" if at is None else span((now - at).total_seconds())


def local(value: object) -> str:
    """An API timestamp in the viewer's local time zone, to the second."""
    at = parse_time(value)
    if at is None:
        return "-"
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def now_utc() -> datetime:
    return datetime.now(UTC)
