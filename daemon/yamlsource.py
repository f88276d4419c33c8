"""YAML that remembers where each value came from, so errors can name file, line and key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from daemon.errors import ConfigError, ConfigProblem

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDocument:
    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of the deepest node along path that exists in the file (1-based)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file safely; duplicate keys are errors, not silently the last one."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(name, None, "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(name, None, "", "not UTF-8 text")]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([ConfigProblem(name, line, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(name, None, "", f"invalid YAML: {exc}")]) from exc
    doc = YamlDocument(name, None)
    if node is None:
        doc.data = {}
        return doc
    problems: list[ConfigProblem] = []
    try:
        doc.data = _build(node, (), doc, problems, yaml.SafeLoader(""))
    except yaml.MarkedYAMLError as exc:  # an unknown tag such as !!python/name: is refused, never run
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([ConfigProblem(name, line, "", f"invalid YAML: {exc.problem}")]) from exc
    if problems:
        raise ConfigError(problems)
    return doc


def _build(
    node: yaml.Node, path: Path_, doc: YamlDocument, problems: list[ConfigProblem], scalars: yaml.SafeLoader
) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = scalars.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                line = key_node.start_mark.line + 1
                problems.append(ConfigProblem(doc.file, line, _dotted(path), "keys must be plain scalars"))
                continue
            skey = str(key)
            if skey in out:
                problems.append(
                    ConfigProblem(doc.file, key_node.start_mark.line + 1, _dotted((*path, skey)), "duplicate key")
                )
                continue
            out[skey] = _build(value_node, (*path, skey), doc, problems, scalars)
            doc.lines[(*path, skey)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, problems, scalars) for i, item in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(doc: YamlDocument, model: type[M]) -> M:
    """Validate a document against a pydantic model; errors name file, line and key.

    Validators find the document's folder in the context (`base_dir`): relative paths are taken from there.
    """
    try:
        return model.model_validate(doc.data, context={"base_dir": Path(doc.file).resolve().parent})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; see config.example.yaml)"
            elif err["type"] == "missing":
                message = "is required and has no default"
            problems.append(ConfigProblem(doc.file, doc.line_of(loc), _dotted(loc), message))
        raise ConfigError(problems) from exc
