"""The JSON Schema of runbook files, generated from the models and shipped in the package for editors
(`itsmd schema runbook`). A test keeps the committed file equal to what the models generate."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from daemon.runbook.spec import Runbook

SCHEMA_FILE = "runbook.schema.json"
SCHEMA_ID = "https://itsmd.dev/schema/runbook.json"


def generate() -> dict[str, Any]:
    schema = Runbook.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def shipped() -> str:
    return resources.files("daemon.runbook").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


if __name__ == "__main__":  # python -m daemon.runbook.schema > daemon/runbook/runbook.schema.json
    print(render(), end="")
