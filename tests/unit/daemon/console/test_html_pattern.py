"""Which runbook param patterns the console also gives the browser: only those that mean the same in Python's
`re.fullmatch` and in a JS regex compiled with the `v` (or `u`) flag, anchored."""

from __future__ import annotations

import pytest

from daemon.console.html_pattern import browser_pattern

SAME = [
    "[a-z0-9]+",
    r"[a-z0-9.\-]{1,63}",
    "(?:web|db)-[0-9]{1,3}",
    r"^[A-Za-z0-9_]+$",
    r"v[0-9]+\.[0-9]+(?:\.[0-9]+)?",
    "x*?y",
    r"[^\/]+",
    "a/b",
]
NOT_SAME = [
    "[a-z0-9.-]+",  # a bare "-" ends a Python class, and is a syntax error in a v-mode class
    r"\d+",  # Unicode digits in Python, ASCII in JS
    r"\w+",
    "(?P<host>[a-z]+)",  # named groups are spelled (?<name>) in JS
    "(?i)[a-z]+",  # inline flags
    "a{,3}",  # Python: up to three; JS: the literal text
    "a*+",  # possessive in Python 3.11; "nothing to repeat" in JS
    "[]a]",  # Python: "]" or "a"; JS: an empty class then "a]"
    "[a-z&&[^x]]",  # v-mode set operations
    "[a|b]",
    "[^/]+",  # so must "/"  # "|" must be escaped in a v-mode class
    "a}",
    r"\-",  # only in a class may "-" be escaped with u or v
    "(",  # not even Python's
    "[z-a]",
]


@pytest.mark.parametrize("pattern", SAME)
def test_patterns_in_the_common_subset_are_given_to_the_browser(pattern: str) -> None:
    assert browser_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", NOT_SAME)
def test_other_patterns_are_left_to_the_server(pattern: str) -> None:
    assert browser_pattern(pattern) is None
