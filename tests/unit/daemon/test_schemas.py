"""`itsmd schema KIND`: a JSON Schema for every file format users write, and the shipped files pass them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from daemon import schemas
from daemon.cli import main
from daemon.runbook import schema as runbook_schema

REPO = Path(__file__).resolve().parents[3]
SHIPPED = {
    "config": [REPO / "config.example.yaml"],
    "services": [REPO / "rules" / "services.yaml"],
    "correlation": [REPO / "rules" / "correlation.yaml"],
    "priority": [REPO / "rules" / "priority.yaml"],
    "drills": [REPO / "rules" / "drills.yaml"],
    "runbook": sorted((REPO / "runbooks").glob("*.yaml")),
}
BROKEN = {
    "config": "listen: 9797\ningest: {max_body_bytes: lots}\n",
    "services": "services:\n  - name: api\n    tier: enormous\n",
    "correlation": "window: soon\n",
    "priority": "matrix: {high: {high: P9}}\n",
    "drills": "drills:\n  - {name: d, service: s, runbook: r, schedule: '@daily', rto: quick}\n",
    "runbook": "name: x\nsteps: []\n",
}


class Yaml12Loader(yaml.SafeLoader):
    """Reads YAML as editors do (yaml-language-server speaks YAML 1.2): `on`, `yes` and `no` are strings, not
    booleans, and dates are strings; only true/false are booleans."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def as_an_editor_reads_it(text: str) -> object:
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def validator(kind: str) -> jsonschema_rs.Draft202012Validator:
    doc = json.loads(schemas.render(kind))
    assert doc["$schema"] == schemas.DIALECT
    return jsonschema_rs.Draft202012Validator(doc)


def test_every_kind_is_covered() -> None:
    assert set(schemas.KINDS) == set(SHIPPED) == set(BROKEN)


@pytest.mark.parametrize("kind", sorted(schemas.KINDS))
def test_the_shipped_files_pass_their_schema(kind: str) -> None:
    check = validator(kind)
    for path in SHIPPED[kind]:
        errors = [e.message for e in check.iter_errors(as_an_editor_reads_it(path.read_text()))]
        assert errors == [], f"{path}: {errors}"


@pytest.mark.parametrize("kind", sorted(schemas.KINDS))
def test_a_broken_file_fails_its_schema(kind: str) -> None:
    assert not validator(kind).is_valid(as_an_editor_reads_it(BROKEN[kind]))


def test_unknown_keys_are_refused_as_the_daemon_refuses_them() -> None:
    assert not validator("services").is_valid({"services": [{"name": "api", "teir": "high"}]})


@pytest.mark.parametrize("kind", sorted(schemas.KINDS))
def test_itsmd_schema_prints_it(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    assert json.loads(capsys.readouterr().out)["$id"].endswith(f"/{kind}.json")


def test_the_runbook_schema_printed_is_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "runbook"]) == 0
    assert capsys.readouterr().out == runbook_schema.shipped()
