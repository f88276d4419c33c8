"""JSON Schemas of every file format users write, generated from the models that validate them.

`itsmd schema KIND` prints one; `itsmd kit export DIR` writes them all. They are generated, not kept as copies,
so they cannot drift from what `itsmd check` and the daemon accept (the runbook schema is also committed as a
file for editors that fetch it from the repository; a test keeps that file equal to the generated one).
Editors validate YAML with them, e.g. yaml-language-server: `# yaml-language-server: $schema=services.schema.json`.
Semantic rules (names that must exist, cross-file references) are beyond a schema: `itsmd check` applies them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from daemon.catalogue.services import Catalogue
from daemon.config import Config
from daemon.correlate.priority import PriorityRules
from daemon.correlate.rules import CorrelationRules
from daemon.drills.spec import DrillFile
from daemon.runbook import schema as runbook_schema

Json = dict[str, Any]
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _from_model(model: type[BaseModel], name: str, title: str) -> Callable[[], Json]:
    def generate() -> Json:
        schema = model.model_json_schema(by_alias=True)
        schema["title"] = title
        return {"$schema": DIALECT, "$id": f"https://itsmd.dev/schema/{name}.json", **schema}

    return generate


KINDS: dict[str, tuple[str, Callable[[], Json]]] = {
    "config": ("the daemon's config file (config.example.yaml)", _from_model(Config, "config", "itsmd config")),
    "services": (
        "rules/services.yaml, the service catalogue",
        _from_model(Catalogue, "services", "itsmd service catalogue"),
    ),
    "correlation": (
        "rules/correlation.yaml, how alerts become incidents",
        _from_model(CorrelationRules, "correlation", "itsmd correlation rules"),
    ),
    "priority": (
        "rules/priority.yaml, the impact x urgency matrix",
        _from_model(PriorityRules, "priority", "itsmd priority rules"),
    ),
    "drills": ("rules/drills.yaml, continuity drills", _from_model(DrillFile, "drills", "itsmd continuity drills")),
    "runbook": ("a runbook file in runbooks/", runbook_schema.generate),
}


def render(kind: str) -> str:
    """The schema of `kind` as JSON text (sorted keys, so the output is stable)."""
    _, generate = KINDS[kind]
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def file_name(kind: str) -> str:
    return f"{kind}.schema.json"
