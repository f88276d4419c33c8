"""Whatever a config or rule file holds, loading it ends in a Config or a ConfigError: never another
exception, never a traceback for the operator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.catalogue.services import load_catalogue
from daemon.config import load_config
from daemon.correlate.priority import load_priority_rules
from daemon.correlate.rules import load_correlation_rules
from daemon.drills.spec import check_drills
from daemon.errors import ConfigError
from daemon.runbook.check import load_runbook
from tests.fuzz_budget import examples

KEYS = [
    "listen",
    "data_dir",
    "rules_dir",
    "ingest",
    "alerts",
    "storage",
    "shutdown_timeout",
    "group_by",
    "reopen_window",
    "commit_timeout",
    "max_body_bytes",
    "rate_limit",
    "synchronous",
    "service_label",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["5m", "-1", "1h30m", "0s", "127.0.0.1:1", "normal", "[]", "{}", "!!python/name:os.system"]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


RULE_FILES = {"correlation.yaml", "services.yaml", "priority.yaml", "drills.yaml"}
"""A config's rules_dir may be any folder: its rule files' problems name those files, rightly."""


def _load_both(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, load in (("itsmd.yaml", load_config), ("correlation.yaml", load_correlation_rules)):
            path = folder / name
            path.write_text(text, encoding="utf-8")
            try:
                load(path)
            except ConfigError as exc:
                assert exc.problems, "a ConfigError names at least one problem"
                for problem in exc.problems:
                    named = Path(problem.file)
                    assert problem.file == str(path) or (name == "itsmd.yaml" and named.name in RULE_FILES), problem


@settings(max_examples=examples(300), deadline=None)
@given(documents)
def test_structured_documents(document: object) -> None:
    _load_both(yaml.safe_dump(document))


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _load_both(text)


SHIPPED = Path(__file__).resolve().parents[3]
MUTABLE = [
    ("rules/services.yaml", "services.yaml"),
    ("rules/correlation.yaml", "correlation.yaml"),
    ("rules/priority.yaml", "priority.yaml"),
    ("rules/drills.yaml", "drills.yaml"),
    ("runbooks/restart-service.yaml", "runbook.yaml"),
    ("runbooks/failover-drill.yaml", "runbook.yaml"),
]


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _mutated(document: object, edits: list[tuple[int, object]]) -> object:
    """The shipped document with some nodes replaced (or, for None, taken out)."""
    for pick, value in edits:
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = paths[pick % len(paths)]
        parent = document
        for part in path[:-1]:
            parent = parent[part]  # type: ignore[index]
        if value is None:
            del parent[path[-1]]  # type: ignore[attr-defined]
        else:
            parent[path[-1]] = value  # type: ignore[index]
    return document


@settings(max_examples=examples(300), deadline=None)
@given(
    st.sampled_from(MUTABLE),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.one_of(st.none(), scalars, st.lists(scalars, max_size=2))), max_size=4
    ),
)
def test_mutated_shipped_files_give_problems_never_tracebacks(
    shipped: tuple[str, str], edits: list[tuple[int, object]]
) -> None:
    """Every problem in one pass means validating the valid parts again: whatever a file holds, that ends in
    the file's model or in problems of this file, each at a line of it."""

    loaders = {
        "services.yaml": load_catalogue,
        "correlation.yaml": load_correlation_rules,
        "priority.yaml": load_priority_rules,
        "drills.yaml": lambda p: check_drills(p, services=["checkout"], runbooks={"failover-drill": ["drill"]}),
        "runbook.yaml": load_runbook,
    }
    source, kind = shipped
    document = _mutated(yaml.safe_load((SHIPPED / source).read_text(encoding="utf-8")), edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / kind
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        try:
            loaders[kind](path)
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.file == str(path) and problem.line is not None, problem
                assert not problem.message.startswith(("Value error", "Assertion failed")), problem
