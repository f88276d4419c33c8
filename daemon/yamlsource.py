"""YAML that remembers where each value came from, so errors can name file, line and key."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from daemon.errors import ConfigError, ConfigProblem

Path_ = tuple[str | int, ...]
KeyPath = Path_
M = TypeVar("M", bound=BaseModel)


class Finding(NamedTuple):
    """A problem at a key path, relative to the model (or document) being checked."""

    path: KeyPath
    message: str
    uses: tuple[KeyPath, ...] = ()
    """Other keys the check compared the one at path with (so it is not reported while one of them is bad)."""
    also: KeyPath | None = None
    """The other key of a pair, such as the first of two equal names: `{also}` in the message says where."""


Checks = Callable[[M], Iterable[Finding | tuple[KeyPath, str]]]
"""Checks of a validated model that need more than the model knows (other files); key paths from its root."""
PROBLEMS = "itsmd_problems"


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


def raise_problems(found: Iterable[Finding | tuple[KeyPath, str]]) -> None:
    """Report problems from a model validator, each at its key path relative to the model, all at once.

    A plain ValueError names only the model, so `itsmd check` would point at the model's first line; these
    name the offending key (`services[3].name`), and so its line.
    """
    items = tuple(Finding(*item) for item in found)
    if items:
        summary = "; ".join(f"{_dotted(f.path)}: {f.message}" if f.path else f.message for f in items)
        raise PydanticCustomError(PROBLEMS, "{summary}", {"summary": summary, "problems": items})


def validate(doc: YamlDocument, model: type[M], checks: Checks[M] | None = None) -> M:
    """Validate a document against a pydantic model, then `checks` on the result; raises ConfigError with
    every problem, each naming file, line and key.

    Validators find the document's folder in the context (`base_dir`): relative paths are taken from there.
    """
    found, problems = validate_partial(doc, model, checks)
    if problems or found is None:
        raise ConfigError(problems)
    return found


def validate_partial(
    doc: YamlDocument, model: type[M], checks: Checks[M] | None = None
) -> tuple[M | None, list[ConfigProblem]]:
    """Every problem of a document in one pass, and the model (None when nothing of it validated).

    Pydantic runs a model's own validators only once all its fields are valid, so the cross-field checks of a
    file with one bad field would stay hidden until that is fixed. So after the field errors, what failed is
    taken out and the rest validated again, to report the checks of the parts that are valid. A bad list item
    is dropped whole (the other items are real values: their checks hold). A bad field outside a list falls
    back to its default, so a check that reads it (its own key, a key inside or around it, or one of its
    `uses`) is not reported: it would judge a value the file does not hold. With problems, the model returned
    is built from what was left (or None): good enough to find the other files a config names, not to run on.
    """
    context = {"base_dir": Path(doc.file).resolve().parent}
    problems: list[ConfigProblem] = []
    removed: list[KeyPath] = []
    defaulted: list[KeyPath] = []
    data = doc.data

    def report(findings: Iterable[Finding], later: bool) -> None:
        for finding in findings:
            path = _original(finding.path, doc.data, removed)
            also = None if finding.also is None else _original(finding.also, doc.data, removed)
            uses = [path, *(_original(u, doc.data, removed) for u in finding.uses), *([also] if also else [])]
            if later and any(_related(d, u) for d in defaulted for u in uses):
                continue
            message = finding.message
            if also is not None:
                message = message.replace("{also}", f"{_dotted(also)} at line {doc.line_of(also)}")
            problem = ConfigProblem(doc.file, doc.line_of(path), _dotted(path), message)
            if problem not in problems:  # an error no pass could take out comes back in the next
                problems.append(problem)

    for attempt in range(_MAX_PASSES):
        try:
            found = model.model_validate(data, context=context)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        else:
            if checks is not None:
                report((Finding(*item) for item in checks(found)), attempt > 0)
            return found, problems
        # The paths of this pass's errors are paths of its data: what they take out is taken out after them.
        targets: dict[KeyPath, bool] = {}  # -> whether its default then applies
        for err in errors:
            at = tuple(p for p in err["loc"] if isinstance(p, str | int))
            if _spurious_too_short(err):
                continue
            if attempt == 0 or err["type"] in _SEMANTIC:
                report(_findings(err, at), attempt > 0)
            target = _prune_target(_original(at, doc.data, removed), err["type"], doc.data, removed)
            if target is not None and target not in targets:
                targets[target] = err["type"] != "extra_forbidden" and not _is_list_item(target, doc.data)
        if not targets:
            break
        removed.extend(targets)
        defaulted.extend(t for t, default in targets.items() if default)
        data = _without(doc.data, removed, ())
    return None, problems


_MAX_PASSES = 8
_SEMANTIC = frozenset({PROBLEMS, "value_error", "assertion_error"})
"""Errors of model validators: in a later pass, the checks that the field errors had hidden."""
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _related(a: KeyPath, b: KeyPath) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def _findings(err: ErrorDetails, loc: KeyPath) -> list[Finding]:
    """The problems of one pydantic error, in the words of this project (the one place that words them)."""
    if err["type"] == PROBLEMS:
        items: tuple[Finding, ...] = err.get("ctx", {})["problems"]
        return [
            Finding((*loc, *f.path), f.message, tuple((*loc, *u) for u in f.uses), f.also and (*loc, *f.also))
            for f in items
        ]
    message = err["msg"]
    if loc and loc[-1] == "[key]":  # pydantic's mark of a mapping key that is not valid
        loc, message = loc[:-1], f"invalid key: {message}"
    if err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see config.example.yaml)"
    elif err["type"] == "missing":
        message = "is required and has no default"
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return [Finding(loc, message)]


def _problem(doc: YamlDocument, path: KeyPath, message: str) -> ConfigProblem:
    return ConfigProblem(doc.file, doc.line_of(path), _dotted(path), message)


def _spurious_too_short(err: ErrorDetails) -> bool:
    """Pydantic counts only the valid items: one bad step of one would also say "at least 1 item"."""
    if err["type"] != "too_short" or not isinstance(err["input"], list | tuple | dict):
        return False
    minimum = int(err.get("ctx", {}).get("min_length", 0))
    return len(err["input"]) >= minimum


def _node(data: Any, path: KeyPath) -> tuple[bool, Any]:
    for part in path:
        in_dict = isinstance(data, dict) and isinstance(part, str) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            return False, None
        data = data[part]
    return True, data


def _is_list_item(path: KeyPath, data: Any) -> bool:
    return bool(path) and isinstance(path[-1], int) and isinstance(_node(data, path[:-1])[1], list)


def _prune_target(loc: KeyPath, kind: str, data: Any, removed: list[KeyPath]) -> KeyPath | None:
    """What to take out for an error at loc: an unknown key itself; otherwise the outermost list item around
    the error, or else the deepest node of loc that the document holds (the parent of a missing key)."""
    present = [loc[:i] for i in range(1, len(loc) + 1) if _node(data, loc[:i])[0] and loc[:i] not in removed]
    if not present:
        return None
    if kind == "extra_forbidden" and present[-1] == loc:
        return loc
    for path in present:
        if _is_list_item(path, data):
            return path
    return present[-1]


def _without(data: Any, removed: list[KeyPath], path: KeyPath) -> Any:
    if isinstance(data, dict):
        return {k: _without(v, removed, (*path, k)) for k, v in data.items() if (*path, k) not in removed}
    if isinstance(data, list):
        return [_without(v, removed, (*path, i)) for i, v in enumerate(data) if (*path, i) not in removed]
    return data


def _original(path: KeyPath, data: Any, removed: list[KeyPath]) -> KeyPath:
    """A key path of the document with items removed, as a path of the document itself."""
    if not removed:
        return path
    out: list[str | int] = []
    for part in path:
        if isinstance(data, list) and isinstance(part, int):
            kept = [i for i in range(len(data)) if (*out, i) not in removed]
            if not 0 <= part < len(kept):
                return (*out, *path[len(out) :])
            out.append(kept[part])
            data = data[kept[part]]
        else:
            out.append(part)
            data = data.get(part) if isinstance(data, dict) and isinstance(part, str) else None
    return tuple(out)
