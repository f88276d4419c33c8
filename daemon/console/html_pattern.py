"""Whether a runbook param's pattern may also be an `<input pattern>`: the browser's check, before the server's.

Browsers compile the attribute as a JavaScript regex with the `v` flag (older ones `u`), anchored as
`^(?:pattern)$`. Python's syntax differs (named groups, inline flags, `{,n}`, possessive quantifiers, an
unescaped `-` or `|` in a class, Unicode `\\d` and `\\w`), and a browser ignores a pattern it cannot compile, or
worse, one that means something else would refuse values the server accepts. So the attribute is set only for
patterns written in a small subset that means the same in Python and in both JS modes; any other pattern is
checked by the server alone, which always checks anyway.
"""

from __future__ import annotations

import re
import warnings

SYNTAX = frozenset("^$\\.*+?()[]{}|/")
"""What JS `u`/`v` mode lets one escape outside a class; inside a class also `-`."""
CLASS_FORBIDDEN = frozenset("()[]{}/-\\|")
"""Characters a `v`-mode class refuses unescaped (besides a range's own `-`)."""
CLASS_DOUBLES = frozenset("&!#$%*+,.:;<=>?@^`~")
"""Punctuators `v` mode reserves when doubled inside a class (`&&`, `--`, ...)."""
QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")


def browser_pattern(pattern: str) -> str | None:
    """The pattern when it means the same to the browser as to the server's `re.fullmatch`, else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "possible set intersection": Python may change its meaning
        try:
            re.compile(pattern)
        except (re.error, FutureWarning):
            return None
    return pattern if _subset(pattern) else None


def _subset(p: str) -> bool:
    i, depth, can_repeat = 0, 0, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            if i + 1 >= len(p) or p[i + 1] not in SYNTAX:
                return False
            i, can_repeat = i + 2, True
        elif c == "[":
            end = _class_end(p, i + 1)
            if end is None:
                return False
            i, can_repeat = end + 1, True
        elif c == "(":
            if p.startswith("(?", i) and not p.startswith("(?:", i):
                return False
            depth += 1
            i, can_repeat = i + (3 if p.startswith("(?:", i) else 1), False
        elif c == ")":
            depth -= 1
            if depth < 0:
                return False
            i, can_repeat = i + 1, True
        elif c in "*+?{":
            if not can_repeat:
                return False
            if c == "{":
                found = QUANTIFIER.match(p, i)
                if found is None:
                    return False
                i = found.end()
            else:
                i += 1
            if i < len(p) and p[i] == "?":
                i += 1  # lazy: the same in both
            can_repeat = False
        elif c in "|^$":
            i, can_repeat = i + 1, False
        elif c in "]}":
            return False
        else:
            i, can_repeat = i + 1, True
    return depth == 0


def _class_end(p: str, i: int) -> int | None:
    """The index of the `]` closing the class opened before i, or None when the class is outside the subset."""
    if i < len(p) and p[i] == "^":
        i += 1
    atoms = 0
    previous = ""
    while i < len(p):
        c = p[i]
        if c == "]":
            return i if atoms else None
        if c == "\\":
            if i + 1 >= len(p) or p[i + 1] not in SYNTAX | {"-"}:
                return None
            i, previous, atoms = i + 2, "", atoms + 1
            continue
        if c == "-":
            # a range a-z between two plain atoms; both ends the same in Python and JS for these characters
            if not previous or i + 1 >= len(p) or p[i + 1] in CLASS_FORBIDDEN or p[i + 1] == "]":
                return None
            if ord(p[i + 1]) < ord(previous):
                return None
            i, previous, atoms = i + 2, "", atoms + 1
            continue
        if c in CLASS_FORBIDDEN or (c in CLASS_DOUBLES and i + 1 < len(p) and p[i + 1] == c):
            return None
        i, previous, atoms = i + 1, c, atoms + 1
    return None
