from __future__ import annotations

import pytest

from daemon.correlate.matchers import match_all, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('service="api"', {"service": "api"}, True),
        ('service="api"', {"service": "api2"}, False),
        ('service!="api"', {"service": "db"}, True),
        ('service!="api"', {}, True),
        ('team!=""', {}, False),
        ('team!=""', {"team": "x"}, True),
        ('severity=~"crit.*|page"', {"severity": "critical"}, True),
        ('severity=~"crit"', {"severity": "critical"}, False),  # anchored at both ends
        ('severity!~"info|debug"', {"severity": "warning"}, True),
        ('severity!~"info|debug"', {"severity": "info"}, False),
        ("service = api", {"service": "api"}, True),  # unquoted, spaces around the operator
        ('msg="a \\"quoted\\" word"', {"msg": 'a "quoted" word'}, True),
    ],
)
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("service", "is not a matcher"),
        ('9x="a"', "is not a matcher"),
        ('x=~"("', "invalid regular expression"),
        ('x="unterminated', "not a valid string"),
    ],
)
def test_bad_matchers_name_the_form(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_matcher(text)


def test_all_must_match() -> None:
    matchers = [parse_matcher('a="1"'), parse_matcher('b=~"2|3"')]
    assert match_all(matchers, {"a": "1", "b": "3"})
    assert not match_all(matchers, {"a": "1", "b": "4"})
    assert match_all([], {})
