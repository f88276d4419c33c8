"""The route table: every route the app serves is declared once, in the OpenAPI document with a typed answer,
its security and its refusals; the document holds together as OpenAPI 3.1; errors map to HTTP by class; and
real answers match their documented schemas."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from daemon import errors
from daemon.api.errors import STATUS_OF_CLASS, status_of
from daemon.api.openapi import build_document
from daemon.api.table import ROUTE_ROLES, ROUTES
from daemon.app import create_app
from daemon.clock import ManualClock
from daemon.drills.runner import DrillBusy
from daemon.runbook.engine import InvalidRunTransition, RunRefused, UnknownRunbook
from tests.unit.daemon.api.test_manage import START, fire
from tests.unit.daemon.api.test_manage import daemon as populated  # noqa: F401  (a fixture)
from tests.unit.daemon.configfiles import load_test_config, write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running

Json = dict[str, Any]
DOCUMENT = build_document(ROUTES)
NOT_CONSOLE = re.compile(r"^/(api/|webhook/|-/|metrics$)")
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    config = write(tmp_path / "etc" / "itsmd.yaml", "{}\n")
    app = create_app(load_test_config(config, data_dir=tmp_path / "data"))
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD" and NOT_CONSOLE.match(path):
            served.add((route.method, path))
    return served


def operations() -> Iterator[tuple[str, str, Json]]:
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            yield method, path, op


def resolve(schema: Json) -> Json:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def is_typed(schema: Json) -> bool:
    """Says something about the answer: not `{}` and not a bare `{"type": "object"}`."""
    schema = resolve(schema)
    if schema.get("type") == "array":
        return is_typed(schema.get("items", {}))
    return bool(schema.get("properties") or schema.get("required") or schema.get("type") not in (None, "object"))


def test_every_served_route_is_declared_once_and_documented(tmp_path: Path) -> None:
    declared = [r.key for r in ROUTES]
    assert len(declared) == len(set(declared)), "a route is declared twice"
    assert served_routes(tmp_path) == set(declared)
    documented = {(m.upper(), p) for m, p, _ in operations()}
    assert documented == set(declared)


def test_every_success_answer_has_a_typed_schema() -> None:
    untyped = []
    for method, path, op in operations():
        for status, answer in op["responses"].items():
            if not status.startswith("2"):
                continue
            content = answer.get("content", {})
            assert content, (method, path, status)
            for media, body in content.items():
                if not is_typed(body["schema"]):
                    untyped.append(f"{method} {path} {status} {media}")
    assert untyped == []


def test_authenticated_operations_declare_security_and_their_refusals() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    by_key = {r.key: r for r in ROUTES}
    for method, path, op in operations():
        route = by_key[(method.upper(), path)]
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes), (method, path)
        if route.access == "open":
            assert op["security"] == [] and "401" not in op["responses"], (method, path)
            continue
        assert op["security"], (method, path)
        assert "401" in op["responses"], (method, path)
        if route.role is not None:
            assert op["x-itsmd-role"] == route.role.label == ROUTE_ROLES[route.key].label
            assert route.role.label in op["responses"]["403"]["description"], (method, path)
    health = {p for _, p, op in operations() if op["security"] == []}
    assert health == {"/-/healthy", "/-/ready", "/metrics"}


def test_the_document_is_well_formed_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["title"] == "itsmd" and DOCUMENT["info"]["version"]
    components = DOCUMENT["components"]["schemas"]
    for name, schema in components.items():
        jsonschema_rs.meta.validate(schema)  # each is a JSON Schema 2020-12, as 3.1 requires
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    text = repr(DOCUMENT)
    for ref in re.findall(r"'\$ref': '([^']+)'", text):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in components, ref
    for method, path, op in operations():
        assert method in METHODS
        templated = set(re.findall(r"{([^}]+)}", path))
        params = op.get("parameters", [])
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert templated == in_path, (method, path)
        assert all(p["required"] for p in params if p["in"] == "path")
        assert len({(p["name"], p["in"]) for p in params}) == len(params)
        for p in params:
            assert p["in"] in ("path", "query", "header", "cookie")
            jsonschema_rs.meta.validate(p["schema"])
        assert op["responses"] and all(re.fullmatch(r"[1-5][0-9][0-9]", s) for s in op["responses"])
        for answer in op["responses"].values():
            assert isinstance(answer["description"], str) and answer["description"]
            for body in answer.get("content", {}).values():
                jsonschema_rs.meta.validate(body["schema"])
        if "requestBody" in op:
            assert set(op["requestBody"]["content"]) == {"application/json"}


def test_every_refusal_class_has_its_status_and_subclasses_inherit_it() -> None:
    refusals = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.RequestError) and cls.__module__ == errors.__name__
    }
    assert refusals == set(STATUS_OF_CLASS)
    assert status_of(errors.NotFound("not_found", "x")) == 404
    assert status_of(UnknownRunbook("unknown_runbook", "x")) == 404  # NotFound before RunRefused's 422
    assert isinstance(UnknownRunbook("unknown_runbook", "x"), RunRefused)
    assert status_of(RunRefused("bad_param", "x")) == 422
    assert status_of(InvalidRunTransition("x")) == 409
    assert status_of(DrillBusy("x")) == 409
    assert status_of(errors.RequestError("invalid_body", "x")) == 400


@pytest.fixture
async def quiet(tmp_path: Path) -> AsyncIterator[Daemon]:
    config = write(tmp_path / "etc" / "itsmd.yaml", "{}\n")
    async with running(config, tmp_path / "data", ManualClock(epoch(START))) as d:
        yield d


def check(answer: Any, method: str, path: str, status: int = 200) -> None:
    """Validate a real answer against its operation's documented schema, components included."""
    schema = DOCUMENT["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    root = _inline({**schema, "$defs": DOCUMENT["components"]["schemas"]})
    jsonschema_rs.Draft202012Validator(root).validate(answer)


def _inline(schema: Any) -> Any:
    """The schema with its references pointed at the root's $defs, where check() puts the components."""
    if isinstance(schema, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" else _inline(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_inline(v) for v in schema]
    return schema


async def test_real_answers_match_their_documented_schemas(populated: Daemon) -> None:  # noqa: F811
    d = populated
    await fire(d)
    d.clock.advance(60)
    check(await d.get_json("/api/v1/incidents?status=all"), "get", "/api/v1/incidents")
    check(await d.get_json("/api/v1/incidents/1"), "get", "/api/v1/incidents/{id}")
    check(await d.get_json("/api/v1/alerts"), "get", "/api/v1/alerts")
    fingerprint = (await d.alerts())[0]["fingerprint"]
    check(await d.get_json(f"/api/v1/alerts/{fingerprint}"), "get", "/api/v1/alerts/{fingerprint}")
    status, acked = await d.post("/api/v1/incidents/1/acknowledge", {"reason": "on it"})
    assert status == 200, acked
    check(acked, "post", "/api/v1/incidents/{id}/acknowledge")
    status, noted = await d.post("/api/v1/incidents/1/notes", {"text": "looking"})
    check(noted, "post", "/api/v1/incidents/{id}/notes")
    check(await d.get_json("/api/v1/audit"), "get", "/api/v1/audit")
    check(await d.get_json("/api/v1/services"), "get", "/api/v1/services")
    check(await d.get_json("/api/v1/problems"), "get", "/api/v1/problems")
    status, explained = await d.post("/api/v1/explain", {"labels": {"alertname": "Down", "service": "api"}})
    assert status == 200, explained
    check(explained, "post", "/api/v1/explain")
    for path in ("/api/v1/changes", "/api/v1/runs", "/api/v1/drills", "/api/v1/openapi.json", "/-/healthy"):
        check(await d.get_json(path), "get", path)
    check(await d.get_json("/-/ready"), "get", "/-/ready")
    check(await d.get_json("/api/v1/reports/2026-11"), "get", "/api/v1/reports/{period}")
    for path in ("/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/status", "/api/v2/receivers"):
        check(await d.get_json(path), "get", path)
    status, refused = await d.post("/api/v1/incidents/99/acknowledge", {})
    assert status == 404
    check(refused, "post", "/api/v1/incidents/{id}/acknowledge", 404)
