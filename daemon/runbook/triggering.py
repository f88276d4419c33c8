"""Does an incident event match a runbook's trigger: event kind, service, priority, label matchers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.runbook.spec import RunbookFields, TriggerOn

_KINDS = {
    IncidentEventKind.OPENED: TriggerOn.INCIDENT_OPENED,
    IncidentEventKind.REOPENED: TriggerOn.INCIDENT_OPENED,
    IncidentEventKind.REPEATED: TriggerOn.REPEATED,
    IncidentEventKind.KNOWN_ERROR: TriggerOn.KNOWN_ERROR,
}
_MATCHER = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str] | object) -> bool:
        got = labels.get(self.name, "") if isinstance(labels, dict) else ""
        if self.op == "=":
            return bool(got == self.value)
        if self.op == "!=":
            return bool(got != self.value)
        hit = re.fullmatch(self.value, str(got)) is not None
        return hit if self.op == "=~" else not hit


@lru_cache(maxsize=1024)
def parse_matcher(text: str) -> Matcher:
    """`name="value"` (also unquoted), `!=`, `=~`, `!~`; raises ValueError naming the expected form."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f'{text!r} is not a matcher like job="web", env!="dev" or instance=~"db.*"')
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression: {exc}") from None
    return Matcher(name, op, value)


def trigger_matches(spec: RunbookFields, event: IncidentEvent) -> bool:
    trigger = spec.trigger
    if trigger is None:
        return False
    kind = _KINDS.get(event.kind)
    if kind is None or kind not in trigger.on:
        return False
    if event.kind is IncidentEventKind.KNOWN_ERROR and event.runbook is not None and event.runbook != spec.name:
        return False
    if trigger.service and event.service not in trigger.service:
        return False
    if trigger.priority and event.priority not in trigger.priority:
        return False
    labels = dict(event.labels)
    return all(parse_matcher(m).matches(labels) for m in trigger.matchers)
