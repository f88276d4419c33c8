"""The Alertmanager v2 reads in itsmd's own OpenAPI document (GET /api/v1/openapi.json).

The answers' exact shapes are Alertmanager's (its OpenAPI document, v0.25.0; the unit tests check them
against it), so only their outline is repeated here: enough for schemathesis to call every read with
generated queries and check that none answers a 5xx.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
ERROR_REF = {"$ref": "#/components/schemas/Error"}
_LABELS: Json = {"type": "object", "additionalProperties": {"type": "string"}}
_RECEIVER: Json = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_ALERT: Json = {
    "type": "object",
    "required": ["labels", "annotations", "receivers", "fingerprint", "startsAt", "updatedAt", "endsAt", "status"],
    "properties": {
        "labels": _LABELS,
        "annotations": _LABELS,
        "receivers": {"type": "array", "items": _RECEIVER},
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
_GROUP: Json = {
    "type": "object",
    "required": ["labels", "receiver", "alerts"],
    "properties": {"labels": _LABELS, "receiver": _RECEIVER, "alerts": {"type": "array", "items": _ALERT}},
}


def _flag(name: str, what: str) -> Json:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "boolean", "default": True},
            "description": what}  # fmt: skip


_FILTER: Json = {
    "name": "filter",
    "in": "query",
    "required": False,
    "schema": {"type": "array", "items": {"type": "string"}},
    "style": "form",
    "explode": True,
    "description": 'matchers, all of which must match: name="value", name!="value", name=~"re", name!~"re"',
}
_RECEIVER_QUERY: Json = {
    "name": "receiver",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "a regex the whole name of one of the alert's receivers must match",
}
_FLAGS = [
    _flag("active", "show active alerts"),
    _flag("silenced", "show silenced alerts (itsmd silences none)"),
    _flag("inhibited", "show inhibited alerts (itsmd inhibits none)"),
]


def _ok(description: str, schema: Json) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refused(description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _upstream() -> Json:
    return {
        "502": _refused("the configured Alertmanager answered with an error (alertmanager_error)"),
        "503": _refused("the configured Alertmanager could not be reached (alertmanager_unavailable)"),
    }


def alertmanager_paths() -> dict[str, Json]:
    """Path -> the GET operation of each read (merged with POST /api/v2/alerts by the caller)."""
    bad_query = _refused("bad flag, matcher or regex: the reason says which")
    return {
        "/api/v2/alerts": {
            "get": {
                "summary": "Alertmanager v2: the firing alerts, in Alertmanager's gettableAlert shape",
                "parameters": [*_FLAGS, _flag("unprocessed", "show unprocessed alerts"), _FILTER, _RECEIVER_QUERY],
                "responses": {"200": _ok("alerts", {"type": "array", "items": _ALERT}), "400": bad_query},
            }
        },
        "/api/v2/alerts/groups": {
            "get": {
                "summary": "Alertmanager v2: one alert group per incident with firing alerts",
                "parameters": [*_FLAGS, _FILTER, _RECEIVER_QUERY],
                "responses": {"200": _ok("alert groups", {"type": "array", "items": _GROUP}), "400": bad_query},
            }
        },
        "/api/v2/status": {
            "get": {
                "summary": "Alertmanager v2: itsmd's version, start time and config without secrets",
                "responses": {
                    "200": _ok(
                        "status",
                        {"type": "object", "required": ["cluster", "versionInfo", "config", "uptime"]},
                    )
                },
            }
        },
        "/api/v2/receivers": {
            "get": {
                "summary": "Alertmanager v2: the receivers alerts carry",
                "responses": {"200": _ok("receivers", {"type": "array", "items": _RECEIVER})},
            }
        },
        "/api/v2/silences": {
            "get": {
                "summary": "Alertmanager v2: the configured Alertmanager's silences, read through (none without)",
                "parameters": [_FILTER],
                "responses": {
                    "200": _ok("silences", {"type": "array", "items": {"type": "object"}}),
                    "400": bad_query,
                    **_upstream(),
                },
            }
        },
        "/api/v2/silence/{silenceID}": {
            "get": {
                "summary": "Alertmanager v2: one silence of the configured Alertmanager",
                "parameters": [{"name": "silenceID", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": _ok("the silence", {"type": "object"}),
                    "404": _refused("no such silence, or no Alertmanager configured"),
                    **_upstream(),
                },
            }
        },
    }
