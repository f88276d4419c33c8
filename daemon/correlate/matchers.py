"""Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.

Regexes are anchored at both ends, as in Alertmanager and Prometheus. A matcher on an absent label sees the
empty string, so `team!=""` means "has a team label".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")
OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.regex is not None:
            found = self.regex.fullmatch(actual) is not None
            return found if self.op == "=~" else not found
        return (actual == self.value) if self.op == "=" else (actual != self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """One matcher; raises ValueError naming the accepted form."""
    m = _MATCHER.fullmatch(text)
    if m is None:
        raise ValueError(f'{text!r} is not a matcher: use name="value", name!="value", name=~"re" or name!~"re"')
    name, op, raw = m.groups()
    value = raw
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError(f"{text!r}: the quoted value is not a valid string") from None
        if not isinstance(value, str):
            raise ValueError(f"{text!r}: the value must be a string")
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value, regex)


def _coerce(value: object) -> tuple[Matcher, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise ValueError('matchers are a list of strings like alertname="TargetDown"')
    out = []
    for item in value:
        if isinstance(item, Matcher):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_matcher(item))
        else:
            raise ValueError('each matcher is a string like severity=~"critical|page"')
    return tuple(out)


MATCHERS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "string",
        "description": 'an Alertmanager matcher: name="value", name!="value", =~ or !~ (regex)',
    },
}
Matchers = Annotated[
    tuple[Matcher, ...],
    PlainValidator(_coerce),
    PlainSerializer(lambda matchers: [str(m) for m in matchers], return_type=list[str]),
    WithJsonSchema(MATCHERS_SCHEMA),
]
"""A config field holding a list of matchers, all of which must match."""


def match_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
