"""GET /api/v1/openapi.json: the HTTP API described as OpenAPI 3.1.

Request bodies of the ingest endpoints come from the same pydantic TypeAdapters that validate them, so the
document cannot drift from what is accepted.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from daemon import __version__
from daemon.api.am_openapi import alertmanager_paths
from daemon.api.changes import CHANGE_STATUSES
from daemon.api.drills import RunDrill
from daemon.api.external import ExternalBody
from daemon.api.manage import (
    PROBLEM_STATUSES,
    RECORD_TYPES,
    ActionBody,
    AssignBody,
    ExplainBody,
    NoteBody,
    ProblemBody,
)
from daemon.api.rest import INCIDENT_STATUSES
from daemon.api.runs import DECISIONS, RUN_FILTERS, Decision, StartRun
from daemon.changes.model import ChangeOutcome
from daemon.correlate.incidents import ACTIONS as INCIDENT_ACTIONS
from daemon.problems.manager import ACTIONS as PROBLEM_ACTIONS
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


ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
CHANGE_ANSWERS = {
    "400": _error("invalid body (the reason and error say which field)"),
    "404": _error("no such record"),
    "409": _error("not allowed from the record's status; the error names the allowed actions"),
    "413": _error("body too large"),
    "503": _error("the store cannot commit now; retry after Retry-After"),
}
INCIDENT_ACTION_SUMMARIES = {
    "acknowledge": "Acknowledge an open incident (stops the response clock)",
    "resolve": "Resolve an incident; refused (409 alerts_firing) while alerts fire unless force is true",
    "reopen": "Reopen a resolved incident",
    "close": "Close a resolved incident (final)",
}
PROBLEM_ACTION_SUMMARIES = {
    "confirm": "Confirm a candidate problem",
    "known_error": "Record root cause and workaround (and optionally a runbook): the problem becomes a known error",
    "resolve": "Resolve a problem",
}


def _model_body(model: type[Any], components: Json) -> Json:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}


def _management_paths(components: Json) -> Json:
    """Incident and problem changes, problems, the audit trail, explain, services and reload."""
    paths: Json = {}
    for action in INCIDENT_ACTIONS:
        paths[f"/api/v1/incidents/{{id}}/{action}"] = {
            "post": {
                "summary": INCIDENT_ACTION_SUMMARIES[action],
                "parameters": ID,
                "requestBody": _model_body(ActionBody, components),
                "responses": {"200": _json("the incident as stored, with its timeline"), **CHANGE_ANSWERS},
            }
        }
    paths["/api/v1/incidents/{id}/assign"] = {
        "post": {
            "summary": 'Assign an incident to a principal (assignee: a name, or "me" for the caller), to nobody '
            "(assignee: null) and/or to a team of the catalogue; a field left out stays as it is. On the timeline "
            "and in the audit trail as assigned or unassigned; nothing is recorded when nothing changes",
            "parameters": ID,
            "requestBody": _model_body(AssignBody, components),
            "responses": {"200": _json("the incident as stored"), **CHANGE_ANSWERS},
        }
    }
    paths["/api/v1/incidents/{id}/notes"] = {
        "post": {
            "summary": "Add a note to an incident's timeline",
            "parameters": ID,
            "requestBody": _model_body(NoteBody, components),
            "responses": {"200": _json("the incident as stored"), **CHANGE_ANSWERS},
        }
    }
    paths["/api/v1/incidents/{id}/external"] = {
        "put": {
            "summary": "Record the incident's ticket in another system (replaces the one recorded before)",
            "parameters": ID,
            "requestBody": _model_body(ExternalBody, components),
            "responses": {"200": _json("the incident as stored"), **CHANGE_ANSWERS},
        }
    }
    paths["/api/v1/webhooks"] = {
        "get": {"summary": "Webhook receivers with their backlog", "responses": {"200": _json("receivers")}}
    }
    paths["/api/v1/webhooks/dead-letters"] = {
        "get": {
            "summary": "Webhook events given up on after their receiver's max_age, newest first",
            "parameters": [_query("receiver", STRING, "only this receiver's"), *PAGING],
            "responses": {"200": _json("dead letters"), "400": _error("bad query")},
        }
    }
    paths["/api/v1/problems"] = {
        "get": {
            "summary": "Problems, newest first",
            "parameters": [_query("status", {"enum": [*PROBLEM_STATUSES], "default": "all"}, "filter"), *PAGING],
            "responses": {"200": _json("problems"), "400": _error("bad query")},
        }
    }
    paths["/api/v1/problems/{id}"] = {
        "get": {
            "summary": "One problem with its incidents",
            "parameters": ID,
            "responses": {"200": _json("the problem"), "404": _error("no such problem")},
        }
    }
    for action in PROBLEM_ACTIONS:
        paths[f"/api/v1/problems/{{id}}/{action}"] = {
            "post": {
                "summary": PROBLEM_ACTION_SUMMARIES[action],
                "parameters": ID,
                "requestBody": _model_body(ProblemBody, components),
                "responses": {"200": _json("the problem as stored"), **CHANGE_ANSWERS},
            }
        }
    paths["/api/v1/audit"] = {
        "get": {
            "summary": "Audit events (append-only), oldest first",
            "parameters": [
                _query("record_type", {"enum": list(RECORD_TYPES)}, "incident, problem or run (approval decisions)"),
                _query("record_id", STRING, "the record's id"),
                *PAGING,
            ],
            "responses": {"200": _json("events"), "400": _error("bad query")},
        }
    }
    paths["/api/v1/explain"] = {
        "post": {
            "summary": "Which service, rule, key and priority an alert gets, and whether it would open, attach to or"
            " reopen an incident now; changes nothing",
            "requestBody": _model_body(ExplainBody, components),
            "responses": {
                "200": _json("the explanation"),
                "400": _error("invalid body"),
                "413": _error("body too large"),
            },
        }
    }
    paths["/api/v1/services"] = {
        "get": {"summary": "The service catalogue with effective targets", "responses": {"200": _json("services")}}
    }
    paths["/-/reload"] = {
        "post": {
            "summary": "Reload rules/, runbooks and the config's auth section (secrets read again); all or nothing",
            "responses": {
                "200": _json("reloaded"),
                "400": _error("invalid files or secrets (file:line: key: message); the last good ones stay in use"),
            },
        }
    }
    return paths


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
    start_run = _body_schema(TypeAdapter(StartRun), components)
    decision = _body_schema(TypeAdapter(Decision), components)
    document: Json = {
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
                        _query(
                            "status",
                            {"enum": [*INCIDENT_STATUSES], "default": "active"},
                            "filter (active: open and acknowledged)",
                        ),
                        _query("assignee", STRING, "a principal's name, me (the caller) or none (nobody assigned)"),
                        _query(
                            "team",
                            STRING,
                            "the incident's team (one with no team recorded counts for its service's team)",
                        ),
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
            **_runs_paths(start_run, decision),
            **_changes_paths(),
            **_drills_paths(components),
            **_reports_paths(),
            **_management_paths(components),
        },
        "components": {"schemas": components},
    }
    for path, operations in alertmanager_paths().items():  # GET /api/v2/alerts joins POST /api/v2/alerts
        document["paths"].setdefault(path, {}).update(operations)
    return document


ID_PARAMETER: Json = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
WRITE_REFUSALS = {
    "400": _error("bad body: the reason says which field and why"),
    "413": _error("body over 64 KiB"),
    "503": _error("the store cannot commit now; retry after Retry-After"),
}


def _runs_paths(start_run: Json, decision: Json) -> Json:
    paths: Json = {
        "/api/v1/runs": {
            "get": {
                "summary": "Runbook runs the daemon holds in memory (active and recent), newest first",
                "parameters": [
                    _query("status", {"enum": [*RUN_FILTERS], "default": "all"}, "filter"),
                    _query("runbook", STRING, "only runs of this runbook"),
                    *PAGING,
                ],
                "responses": {"200": _json("runs with their steps"), "400": _error("bad query")},
            },
            "post": {
                "summary": "Start a runbook by hand (live), or render its plan (dry_run: nothing runs or is stored)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": start_run}}},
                "responses": {
                    "200": _json("dry run: the rendered plan"),
                    "201": _json("the run, recorded durably"),
                    "404": _error("no runbook of that name"),
                    "422": _error("refused: a bad param, a missing integration, an unknown service or incident_id"),
                    **WRITE_REFUSALS,
                },
            },
        },
        "/api/v1/runs/{id}": {
            "get": {
                "summary": "One run: status, reason, and every step with attempts, timings and output digest",
                "parameters": [ID_PARAMETER],
                "responses": {"200": _json("the run"), "404": _error("no such run")},
            }
        },
    }
    for verb in DECISIONS:
        paths[f"/api/v1/runs/{{id}}/{verb}"] = {
            "post": {
                "summary": f"{verb.capitalize()} a run",
                "parameters": [ID_PARAMETER],
                "requestBody": {"required": False, "content": {"application/json": {"schema": decision}}},
                "responses": {
                    "200": _json("the run after the decision"),
                    "403": _error(
                        "the principal's role is too low, it is not in the runbook's approval.who, or it requested "
                        "this normal change and may not approve it (separation of duties)"
                    ),
                    "404": _error("no such run"),
                    "409": _error("not allowed in the run's state; the message names what is"),
                    **WRITE_REFUSALS,
                },
            }
        }
    return paths


def _changes_paths() -> Json:
    return {
        "/api/v1/changes": {
            "get": {
                "summary": "Change records, newest first",
                "parameters": [
                    _query("status", {"enum": [*CHANGE_STATUSES], "default": "all"}, "open: no outcome yet"),
                    _query("outcome", {"enum": [o.value for o in ChangeOutcome]}, "filter"),
                    _query("service", STRING, "filter"),
                    *PAGING,
                ],
                "responses": {"200": _json("changes"), "400": _error("bad query")},
            }
        },
        "/api/v1/changes/{id}": {
            "get": {
                "summary": "One change with its audit events and the incidents linked to it",
                "parameters": [ID_PARAMETER],
                "responses": {"200": _json("the change"), "404": _error("no such change")},
            }
        },
    }


NAME_PARAMETER: Json = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _drills_paths(components: Json) -> Json:
    return {
        "/api/v1/drills": {
            "get": {
                "summary": "Continuity drills in use: schedule, time zone, RTO/RPO, recovery check, last result, "
                "next run",
                "responses": {"200": _json("drills")},
            }
        },
        "/api/v1/drills/{name}": {
            "get": {
                "summary": "One drill with its last result (outcome, measured recovery time, reason) and next run",
                "parameters": [NAME_PARAMETER],
                "responses": {"200": _json("the drill"), "404": _error("no drill of that name")},
            }
        },
        "/api/v1/drills/{name}/run": {
            "post": {
                "summary": "Run a drill now; 202 with the drill run (poll the drill for the result). Recorded "
                "skipped, with the reason, while the service has an open P1/P2 incident",
                "parameters": [NAME_PARAMETER],
                "requestBody": {**_model_body(RunDrill, components), "required": False},
                "responses": {
                    "202": _json("the drill run, recorded durably (it may already be skipped or in error)"),
                    "404": _error("no drill of that name"),
                    "409": _error("a drill of the same service is running; the message names it"),
                    **WRITE_REFUSALS,
                },
            }
        },
    }


def _reports_paths() -> Json:
    return {
        "/api/v1/reports/{period}": {
            "get": {
                "summary": "Service report of a calendar month (ISO/IEC 20000-1 9.4), built from the store",
                "parameters": [
                    {
                        "name": "period",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$"},
                        "description": "the month, YYYY-MM (days in reports.time_zone)",
                    },
                    _query("service", STRING, "only this catalogue service"),
                    _query("format", {"enum": ["json", "md", "html"], "default": "json"}, "output format"),
                ],
                "responses": {
                    "200": {
                        "description": "the report",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/markdown": {"schema": {"type": "string"}},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("bad period or query"),
                    "404": _error("no such service in the catalogue"),
                },
            }
        },
    }


DOCUMENT = web.AppKey("openapi_document", dict)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = build_document()
    app.router.add_get("/api/v1/openapi.json", openapi)
