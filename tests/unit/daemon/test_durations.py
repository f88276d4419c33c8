"""Prometheus-style durations in config files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from daemon.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("4h15m", 15300.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("100ms", 0.1),
        ("1m30s500ms", 90.5),
        ("90s", 90.0),
        ("007s", 7.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5", "m", "1.5h", "-5m", "+5m", " 5m", "5m ", "5M", "1h 30m", "5 m", "5min", "1hour", "ms", "1e3s"]
)
def test_parse_refuses_what_is_not_a_duration_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use a number and a unit, like 30s, 5m"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (1.9, "1s"), (59, "59s"), (60, "1m"), (5400, "1h30m"), (90061, "1d1h1m1s"), (86400, "1d")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_is_the_same_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


class Model(BaseModel):
    timeout: Duration = 5.0


@pytest.mark.parametrize(("value", "seconds"), [("5m", 300.0), (10, 10.0), (1.5, 1.5), ("250ms", 0.25)])
def test_duration_field_takes_strings_and_numbers_of_seconds(value: object, seconds: float) -> None:
    assert Model.model_validate({"timeout": value}).timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "not a boolean"),
        (None, "a duration is a string like 5m"),
        ([1], "a duration is a string like 5m"),
        ("five minutes", "is not a duration"),
    ],
)
def test_duration_field_refuses_other_values(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Model.model_validate({"timeout": value})


def test_duration_field_default() -> None:
    assert Model().timeout == 5.0
