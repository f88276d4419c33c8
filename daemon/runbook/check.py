"""Loading runbook files: schema validation with file:line:key errors, then the semantic checks the schema
cannot express (references that must resolve, lock keys from params only, no alert data in a shell)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jinja2

from daemon.errors import ConfigError, ConfigProblem
from daemon.runbook.library import LoadedRunbook
from daemon.runbook.render import references
from daemon.runbook.spec import ActionChoice, Runbook, RunbookFields, StepFields
from daemon.runbook.triggering import parse_matcher
from daemon.yamlsource import Finding, load_yaml, validate

RUNBOOK_SUFFIXES = (".yaml", ".yml")
VARIABLES: dict[str, frozenset[str] | None] = {
    "params": None,  # attributes checked against the declared params
    "incident": frozenset({"id", "service"}),
    "run": frozenset({"id", "runbook", "mode", "trigger", "requested_by", "emergency"}),
}
PLAIN_KEYS = frozenset({"secret_env", "secret_headers", "who"})
"""Action fields taken literally, not rendered."""
Where = tuple[str | int, ...]


def load_runbook(path: Path) -> LoadedRunbook:
    """One runbook file, validated; ConfigError lists every problem with file:line: key."""
    spec = validate(load_yaml(path), Runbook, semantic)
    version = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedRunbook(spec, version, str(path))


def runbook_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in RUNBOOK_SUFFIXES and p.is_file())


def load_runbooks(folder: Path) -> list[LoadedRunbook]:
    """Every runbook in a folder; ConfigError with the problems of all files (names must be unique)."""
    if not folder.is_dir():
        raise ConfigError([ConfigProblem(str(folder), None, "", "runbooks folder does not exist")])
    return load_runbook_files(runbook_files(folder))


def load_runbook_files(paths: Sequence[Path]) -> list[LoadedRunbook]:
    loaded, problems = check_runbook_files(paths)
    if problems:
        raise ConfigError(problems)
    return loaded


def check_runbook_files(paths: Sequence[Path]) -> tuple[list[LoadedRunbook], list[ConfigProblem]]:
    """The valid runbooks of these files, and the problems of all of them (names must be unique)."""
    problems: list[ConfigProblem] = []
    loaded: dict[str, LoadedRunbook] = {}
    for path in paths:
        try:
            runbook = load_runbook(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        first = loaded.get(runbook.spec.name)
        if first is not None:
            doc_line = load_yaml(path).line_of(("name",))
            problems.append(ConfigProblem(str(path), doc_line, "name", f"runbook name also used by {first.file}"))
            continue
        loaded[runbook.spec.name] = runbook
    return list(loaded.values()), problems


def semantic(spec: RunbookFields) -> Iterator[Finding | tuple[Where, str]]:
    """Problems the models cannot see, each with the key path it is about."""
    yield from _check_params(spec)
    yield from _check_trigger(spec)
    seen: dict[str, Where] = {}
    for section, steps in (("steps", spec.steps), ("verify", spec.verify)):
        for i, step in enumerate(steps):
            where: Where = (section, i)
            if step.name in seen:
                message = f"step name {step.name!r} is already used by {{also}}"
                yield Finding((*where, "name"), message, also=seen[step.name])
            seen.setdefault(step.name, where)
            if section == "verify" and step.rollback is not None:
                yield (*where, "rollback"), "a runbook-level verify check takes no rollback"
            yield from _check_step(spec, step, where)
    for where, template in _key_templates(spec):
        yield from _check_template(spec, where, template, only_params=True)
    if spec.approval.message:
        yield from _check_template(spec, ("approval", "message"), spec.approval.message)
    if spec.change.type == "normal" and not spec.approval.required:
        yield Finding(
            ("change", "type"),
            "a normal change needs approval: set approval.required: true (or type standard)",
            uses=(("approval", "required"),),
        )


def _check_params(spec: RunbookFields) -> Iterator[Finding | tuple[Where, str]]:
    for name, param in spec.params.items():
        if not name.isidentifier():
            yield ("params", name), f"param name {name!r} must be an identifier (letters, digits, _)"
        try:
            pattern = re.compile(param.pattern)
        except re.error as exc:
            yield ("params", name, "pattern"), f"not a regular expression: {exc}"
            continue
        if param.default is not None and pattern.fullmatch(param.default) is None:
            yield ("params", name, "default"), f"default {param.default!r} does not match the pattern"
        if pattern.fullmatch("") is not None and param.required:
            yield ("params", name, "pattern"), "the pattern accepts an empty value; anchor it and require a character"


def _check_trigger(spec: RunbookFields) -> Iterator[Finding | tuple[Where, str]]:
    if spec.trigger is None:
        return
    for i, matcher in enumerate(spec.trigger.matchers):
        try:
            parse_matcher(matcher)
        except ValueError as exc:
            yield ("trigger", "matchers", i), str(exc)


def _check_step(spec: RunbookFields, step: StepFields, where: Where) -> Iterator[Finding | tuple[Where, str]]:
    for part, choice in (("", step), ("rollback", step.rollback), ("verify", step.verify)):
        if choice is None:
            continue
        base: Where = (*where, part) if part else where
        key, action = choice.action
        if key == "exec" and getattr(action, "shell", False):
            for template in getattr(action, "argv", ()):
                if _has_variables(template):
                    yield (
                        (*base, key, "argv"),
                        (
                            "shell: true takes no template variables (alert data must never reach a shell); "
                            "use an argv list and pass values as arguments or env"
                        ),
                    )
        if key == "approval" and "timeout" in step.model_fields_set and part == "":
            approval_timeout = getattr(action, "timeout", 0.0)
            if step.timeout < approval_timeout:
                yield (
                    (*where, "timeout"),
                    (f"step timeout {step.timeout:g}s is shorter than the approval timeout {approval_timeout:g}s"),
                )
        for sub, template in _templates(choice, (*base, key)):
            yield from _check_template(spec, sub, template)


def _templates(choice: ActionChoice, where: Where) -> Iterator[tuple[Where, str]]:
    _, action = choice.action
    yield from _walk(action.model_dump(by_alias=True, exclude_none=True), where)


def _walk(value: Any, where: Where) -> Iterator[tuple[Where, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, (*where, i))
    elif isinstance(value, dict):
        for k, item in value.items():
            if k not in PLAIN_KEYS:
                yield from _walk(item, (*where, str(k)))


def _key_templates(spec: RunbookFields) -> Iterator[tuple[Where, str]]:
    if spec.concurrency is not None:
        yield ("concurrency", "key"), spec.concurrency.key
    if spec.limits is not None and spec.limits.key is not None:
        yield ("limits", "key"), spec.limits.key


def _has_variables(template: str) -> bool:
    try:
        return any(True for _ in references(template))
    except jinja2.TemplateSyntaxError:
        return True


def _check_template(
    spec: RunbookFields, where: Where, template: str, *, only_params: bool = False
) -> Iterator[Finding | tuple[Where, str]]:
    if "{" not in template:
        return
    try:
        refs = list(references(template))
    except jinja2.TemplateSyntaxError as exc:
        yield where, f"template error: {exc.message}"
        return
    for variable, attr in refs:
        if only_params and variable != "params":
            yield where, f"may only use params (found {variable}): a key must not depend on anything else"
            continue
        if variable not in VARIABLES:
            yield where, f"unknown variable {variable!r}: templates see params, incident and run"
            continue
        allowed = VARIABLES[variable]
        if attr is None:
            continue
        if variable == "params" and attr not in spec.params:
            known = ", ".join(sorted(spec.params)) or "none declared"
            yield Finding(where, f"params.{attr} is not a declared param ({known})", uses=(("params",),))
        elif allowed is not None and attr not in allowed:
            yield where, f"{variable}.{attr} does not exist ({', '.join(sorted(allowed))})"
