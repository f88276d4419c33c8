"""Alertmanager 0.25's own OpenAPI (swagger 2.0) definitions as JSON Schema validators.

Swagger 2.0 schema objects are JSON Schema draft 4 plus a few keywords a validator ignores, so the
definitions are used as they are, under `definitions`, with their `#/definitions/...` refs unchanged.
Formats are checked: `date-time` as RFC 3339; `uri` as Alertmanager itself answers it (an alert without a
generatorURL has "", which is what Alertmanager prints too).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import yaml

OPENAPI = Path(__file__).resolve().parents[3] / "testdata" / "alertmanager" / "openapi-v0.25.0.yaml"


def _uri(value: str) -> bool:
    if value == "":
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


@cache
def definitions() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    found: dict[str, Any] = document["definitions"]
    return found


@cache
def validator(definition: str) -> jsonschema_rs.Validator:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "definitions": definitions(),
        "$ref": f"#/definitions/{definition}",
    }
    return jsonschema_rs.Draft4Validator(schema, validate_formats=True, formats={"uri": _uri})


def problems(definition: str, instance: Any) -> list[str]:
    """Why an answer is not a valid `definition`; empty when it is."""
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator(definition).iter_errors(instance)]
