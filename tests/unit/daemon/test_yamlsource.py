"""YAML that remembers lines: problems name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from daemon.errors import ConfigError, ConfigProblem
from daemon.yamlsource import load_yaml, validate


def write(tmp_path: Path, text: str | bytes, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.key, p.message) for p in exc.value.problems]


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "x"
    inner: Inner = Inner()
    items: list[int] = []


class Required(BaseModel):
    needed: str


DOC = """\
# a comment
name: one

inner:
  size: 3
items:
  - 1
  - 2
"""


def test_values_and_lines(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, DOC))
    assert doc.data == {"name": "one", "inner": {"size": 3}, "items": [1, 2]}
    assert doc.line_of(("name",)) == 2
    assert doc.line_of(("inner",)) == 4
    assert doc.line_of(("inner", "size")) == 5
    assert doc.line_of(("items", 1)) == 8
    # a key that is not in the file: the line of its deepest parent that is (the document starts at line 2)
    assert doc.line_of(("inner", "missing")) == 4
    assert doc.line_of(("nowhere",)) == 2


def test_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, "# only a comment\n"))
    assert doc.data == {}
    assert validate(doc, Outer) == Outer()


def test_duplicate_keys_are_problems_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  size: 1\n  size: 2\nname: b\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert problems_of(caught) == [(4, "inner.size", "duplicate key"), (5, "name", "duplicate key")]
    assert str(caught.value).splitlines() == [f"{path}:4: inner.size: duplicate key", f"{path}:5: name: duplicate key"]


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner: [1, 2\nitems: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert problem.line is not None and problem.line >= 2
    assert problem.message.startswith("invalid YAML: ")


def test_tabs_are_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(write(tmp_path, "inner:\n\tsize: 1\n"))


def test_complex_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(write(tmp_path, "inner:\n  ? [a, b]\n  : 1\n"))
    assert problems_of(caught) == [(2, "inner", "keys must be plain scalars")]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path / "absent.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (None, "")
    assert problem.message.startswith("cannot read: ")
    assert str(problem).startswith(f"{tmp_path / 'absent.yaml'}: cannot read: ")


def test_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(write(tmp_path, b"name: \xff\xfe\n"))
    assert problems_of(caught) == [(None, "", "not UTF-8 text")]


def test_python_tags_build_no_python_objects(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    try:
        doc = load_yaml(path)
    except ConfigError:
        return
    assert doc.data == {"name": ["true"]}


@pytest.mark.parametrize(
    "text", ["listen: !foo 127.0.0.1:1\n", "shutdown_timeout: !!python/name:os.system\n"], ids=["local", "python"]
)
def test_unknown_tag_is_a_problem_at_its_line(tmp_path: Path, text: str) -> None:
    """Not a traceback out of `itsmd check`: a problem line like any other."""
    with pytest.raises(ConfigError) as caught:
        load_yaml(write(tmp_path, "# tagged\n" + text))
    [problem] = caught.value.problems
    assert problem.line == 2


def test_validate_names_unknown_keys_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ninner:\n  size: 1\n  colour: red\n")
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(path), Outer)
    assert problems_of(caught) == [(4, "inner.colour", "unknown key (check the spelling; see config.example.yaml)")]


def test_validate_names_list_items(tmp_path: Path) -> None:
    path = write(tmp_path, "items:\n  - 1\n  - two\n")
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(path), Outer)
    [(line, key, _)] = problems_of(caught)
    assert (line, key) == (3, "items[1]")


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [1]\ninner:\n  size: big\nextra: 1\n")
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(path), Outer)
    assert sorted((line, key) for line, key, _ in problems_of(caught)) == [(1, "name"), (3, "inner.size"), (4, "extra")]


def test_validate_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, "other: 1\n")
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(path), Required)
    assert (1, "needed", "is required and has no default") in problems_of(caught)


def test_validate_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(write(tmp_path, "- a\n- b\n")), Outer)
    [problem] = caught.value.problems
    assert problem.line == 1


def test_problem_text_forms() -> None:
    assert str(ConfigProblem("f.yaml", 3, "a.b", "bad")) == "f.yaml:3: a.b: bad"
    assert str(ConfigProblem("f.yaml", None, "a.b", "bad")) == "f.yaml: a.b: bad"
    assert str(ConfigProblem("f.yaml", 3, "", "bad")) == "f.yaml:3: bad"
