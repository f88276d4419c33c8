"""YAML that remembers lines: problems name file, line and key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.errors import ConfigError, ConfigProblem
from daemon.yamlsource import Finding, load_yaml, raise_problems, validate


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


# -- checks across fields: at their key, beside the field errors ---------------------------------------------


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = 1

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        if value != value.lower():
            raise AssertionError("lower case only")  # pydantic words it "Assertion failed, lower case only"
        return value


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: int = 1
    high: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.low > self.high:
            raise_problems([Finding(("low",), f"must not be above high ({self.high})", uses=(("high",),))])
        return self


class Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: tuple[Item, ...] = Field(default=(), min_length=1)
    window: Window = Window()
    limit: int = 5

    @model_validator(mode="after")
    def _unique(self) -> Listing:
        raise_problems(self._problems())
        return self

    def _problems(self) -> Iterator[Finding]:
        first: dict[str, int] = {}
        for i, item in enumerate(self.items):
            if item.name in first:
                yield Finding(("items", i, "name"), "also used by {also}", also=("items", first[item.name]))
            first.setdefault(item.name, i)
            if item.size > self.limit:
                yield Finding(("items", i, "size"), f"above limit ({self.limit})", uses=(("limit",),))


def found_in(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        validate(load_yaml(write(tmp_path, text)), Listing)
    return problems_of(caught)


LISTING = """\
items:
  - name: a
  - name: B
  - name: c
    size: x
  - name: a
"""


def test_a_cross_field_check_names_its_key_and_runs_beside_field_errors(tmp_path: Path) -> None:
    """Before: the duplicate stayed hidden behind the two bad items; and then it named line 1, no key."""
    assert found_in(tmp_path, LISTING) == [
        (3, "items[1].name", "lower case only"),
        (5, "items[2].size", "Input should be a valid integer, unable to parse string as an integer"),
        (6, "items[3].name", "also used by items[0] at line 2"),
    ]


def test_no_library_prefixes(tmp_path: Path) -> None:
    [(_, _, message)] = found_in(tmp_path, "items:\n  - name: A\n")
    assert message == "lower case only"


def test_an_invalid_item_does_not_also_make_its_list_too_short(tmp_path: Path) -> None:
    assert found_in(tmp_path, "items:\n  - name: A\n") == [(2, "items[0].name", "lower case only")]
    assert found_in(tmp_path, "items: []\n") == [
        (1, "items", "Tuple should have at least 1 item after validation, not 0")
    ]


def test_a_check_that_reads_a_bad_value_is_not_judged_on_its_default(tmp_path: Path) -> None:
    """limit is bad, so its default (5) must not make size 7 "above limit"; the window check, which does not
    read limit, still runs."""
    text = "limit: lots\nitems:\n  - name: a\n    size: 7\nwindow: {low: 20, high: 10}\n"
    assert found_in(tmp_path, text) == [
        (5, "window.low", "must not be above high (10)"),
        (1, "limit", "Input should be a valid integer, unable to parse string as an integer"),
    ]
    # high is bad: the window check reads it, so it is left out; the limit check runs
    text = "items:\n  - name: a\n    size: 7\nwindow: {low: 20, high: ten}\n"
    assert found_in(tmp_path, text) == [
        (4, "window.high", "Input should be a valid integer, unable to parse string as an integer"),
        (3, "items[0].size", "above limit (5)"),
    ]


def test_checks_beyond_the_model_see_the_valid_items_at_their_own_index(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, "items:\n  - name: X\n  - name: b\n  - name: zz\n"))

    def short_names(listing: Listing) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, item in enumerate(listing.items):
            if len(item.name) > 1:
                yield ("items", i, "name"), "one letter"

    with pytest.raises(ConfigError) as caught:
        validate(doc, Listing, short_names)
    assert problems_of(caught) == [(2, "items[0].name", "lower case only"), (4, "items[2].name", "one letter")]
