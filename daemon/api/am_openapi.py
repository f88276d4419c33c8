"""The schemas and query parameters of the Alertmanager v2 reads, for their route declarations.

The answers' exact shapes are Alertmanager's (its OpenAPI document, v0.25.0; the unit tests check them
against it), so only their outline is repeated here: enough for a client to know what it gets and for
schemathesis to call every read with generated queries and check each answer.
"""

from __future__ import annotations

from typing import Any

from daemon.api.routes import Query

Json = dict[str, Any]
_LABELS: Json = {"type": "object", "additionalProperties": {"type": "string"}}
RECEIVER: Json = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
ALERT: Json = {
    "type": "object",
    "required": ["labels", "annotations", "receivers", "fingerprint", "startsAt", "updatedAt", "endsAt", "status"],
    "properties": {
        "labels": _LABELS,
        "annotations": _LABELS,
        "receivers": {"type": "array", "items": RECEIVER},
        "fingerprint": {"type": "string"},
        "startsAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "status": {
            "type": "object",
            "required": ["state", "silencedBy", "inhibitedBy"],
            "properties": {"state": {"enum": ["unprocessed", "active", "suppressed"]}},
        },
    },
}
GROUP: Json = {
    "type": "object",
    "required": ["labels", "receiver", "alerts"],
    "properties": {"labels": _LABELS, "receiver": RECEIVER, "alerts": {"type": "array", "items": ALERT}},
}
STATUS: Json = {
    "type": "object",
    "required": ["cluster", "versionInfo", "config", "uptime"],
    "properties": {
        "cluster": {"type": "object", "required": ["status"]},
        "versionInfo": {"type": "object", "additionalProperties": {"type": "string"}},
        "config": {"type": "object", "required": ["original"], "properties": {"original": {"type": "string"}}},
        "uptime": {"type": "string", "format": "date-time"},
    },
}
SILENCE: Json = {
    "type": "object",
    "description": "Alertmanager's gettableSilence, read through unchanged",
    "required": ["id", "status", "updatedAt", "matchers", "startsAt", "endsAt", "createdBy", "comment"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "object", "required": ["state"], "properties": {"state": {"type": "string"}}},
        "updatedAt": {"type": "string"},
        "matchers": {"type": "array", "items": {"type": "object", "required": ["name", "value", "isRegex"]}},
        "startsAt": {"type": "string"},
        "endsAt": {"type": "string"},
        "createdBy": {"type": "string"},
        "comment": {"type": "string"},
    },
}


def _flag(name: str, what: str) -> Query:
    return Query(name, {"type": "boolean", "default": True}, what)


FILTER = Query(
    "filter",
    {"type": "array", "items": {"type": "string"}},
    'matchers, all of which must match: name="value", name!="value", name=~"re", name!~"re"',
    explode=True,
)
RECEIVER_QUERY = Query(
    "receiver", {"type": "string"}, "a regex the whole name of one of the alert's receivers must match"
)
FLAGS = (
    _flag("active", "show active alerts"),
    _flag("silenced", "show silenced alerts (itsmd silences none)"),
    _flag("inhibited", "show inhibited alerts (itsmd inhibits none)"),
)
UNPROCESSED = _flag("unprocessed", "show unprocessed alerts")
BAD_QUERY = "bad flag, matcher or regex: the reason says which"
UPSTREAM = {
    502: "the configured Alertmanager answered with an error (alertmanager_error)",
    503: "the configured Alertmanager could not be reached (alertmanager_unavailable)",
}
