"""GET /api/v1/openapi.json: the HTTP API described as OpenAPI 3.1.

Request bodies of the ingest endpoints come from the same pydantic TypeAdapters that validate them, so the
document cannot drift from what is accepted.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from daemon import __version__
from daemon.api.rest import INCIDENT_STATUSES
from integrations.alertmanager.payloads import postable_alerts, webhook_payload

Json = dict[str, Any]
STRING: Json = {"type": "string"}
REF = "#/components/schemas/{model}"


def _body_schema(adapter: TypeAdapter[Any], components: Json) -> Json:
    schema = adapter.json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    return schema


def _error(description: str) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _json(description: str, schema: Json | None = None) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _query(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "rows to skip"),
]
INGEST_ANSWERS = {
    "200": _json("durably stored", {"$ref": REF.format(model="Accepted")}),
    "400": _error("refused: the reason says why; nothing was stored"),
    "413": _error("body or alert count over the limit"),
    "429": _error("over the per-client rate; see Retry-After"),
    "503": _error("the store cannot commit now; retry after Retry-After"),
}


def build_document() -> Json:
    components: Json = {
        "Error": {
            "type": "object",
            "required": ["status", "reason", "error"],
            "properties": {"status": {"const": "error"}, "reason": {"type": "string"}, "error": {"type": "string"}},
        },
        "Accepted": {
            "type": "object",
            "required": ["status", "accepted"],
            "properties": {"status": {"const": "success"}, "accepted": {"type": "integer", "minimum": 0}},
        },
    }
    webhook = _body_schema(webhook_payload, components)
    postable = _body_schema(postable_alerts, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "itsmd", "version": __version__},
        "paths": {
            "/webhook/alertmanager": {
                "post": {
                    "summary": "Alertmanager webhook, payload version 4",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": webhook}}},
                    "responses": INGEST_ANSWERS,
                }
            },
            "/api/v2/alerts": {
                "post": {
                    "summary": "Alerts as Prometheus posts them to an Alertmanager",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": postable}}},
                    "responses": INGEST_ANSWERS,
                }
            },
            "/api/v1/incidents": {
                "get": {
                    "summary": "Incidents, newest first",
                    "parameters": [
                        _query("status", {"enum": [*INCIDENT_STATUSES], "default": "open"}, "filter"),
                        *PAGING,
                    ],
                    "responses": {"200": _json("incidents"), "400": _error("bad query")},
                }
            },
            "/api/v1/incidents/{id}": {
                "get": {
                    "summary": "One incident with its alerts and timeline",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "responses": {"200": _json("the incident"), "404": _error("no such incident")},
                }
            },
            "/api/v1/alerts": {
                "get": {
                    "summary": "Alerts",
                    "parameters": [
                        _query(
                            "status", {"enum": ["firing", "resolved", "expired", "all"], "default": "all"}, "filter"
                        ),
                        *PAGING,
                    ],
                    "responses": {"200": _json("alerts"), "400": _error("bad query")},
                }
            },
            "/api/v1/alerts/{fingerprint}": {
                "get": {
                    "summary": "One alert",
                    "parameters": [
                        {"name": "fingerprint", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json("the alert"), "404": _error("no such alert")},
                }
            },
        },
        "components": {"schemas": components},
    }


DOCUMENT = web.AppKey("openapi_document", dict)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = build_document()
    app.router.add_get("/api/v1/openapi.json", openapi)
