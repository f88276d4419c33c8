"""Sandboxed template rendering: runbook text is the template, alert data is only ever a variable.

ImmutableSandboxedEnvironment refuses attribute tricks and mutation; StrictUndefined turns a typo into an
error instead of an empty string. A template is compiled from the runbook file only, never from a label,
and its output is returned as plain text that nothing renders again, so a label value of `{{ 7*7 }}`
stays those nine characters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.errors import ItsmdError

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


class RenderError(ItsmdError):
    """A template could not be rendered (an undefined variable, a sandbox violation)."""


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def parse(source: str) -> nodes.Template:
    """The template's syntax tree; raises jinja2.TemplateSyntaxError."""
    return _ENV.parse(source)


class TemplateRenderer:
    """A Renderer bound to one run's variables: {params, incident, run}."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._variables = dict(variables)

    def __call__(self, template: str) -> str:
        if "{" not in template:  # no expression, statement or comment: the text is the output
            return template
        try:
            return _compile(template).render(self._variables)
        except jinja2.TemplateError as exc:
            raise RenderError(f"cannot render {template!r}: {exc}") from None


def references(source: str) -> Iterator[tuple[str, str | None]]:
    """(variable, attribute) pairs a template reads: `params.host` gives ("params", "host"), `params['x']`
    ("params", "x"), a bare `run` ("run", None)."""
    tree = parse(source)
    attr_parents: set[int] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            attr_parents.add(id(node.node))
            yield node.node.name, node.attr
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name):
            attr_parents.add(id(item.node))
            key = item.arg.value if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str) else None
            yield item.node.name, key
    for name in tree.find_all(nodes.Name):
        if id(name) not in attr_parents and name.ctx == "load":
            yield name.name, None
