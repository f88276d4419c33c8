"""Whatever a config or rule file holds, loading it ends in a Config or a ConfigError: never another
exception, never a traceback for the operator."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import load_config
from daemon.correlate.rules import load_correlation_rules
from daemon.errors import ConfigError
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
