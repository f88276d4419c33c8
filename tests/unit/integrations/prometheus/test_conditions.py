"""`expect:` conditions: exactly one kind, every sample, and an empty result is no evidence of health."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.prometheus.client import QueryResult, Sample
from integrations.prometheus.conditions import Expect


def result(*values: float) -> QueryResult:
    return QueryResult("vector", [Sample({"instance": f"i{n}"}, v) for n, v in enumerate(values)])


@pytest.mark.parametrize(
    ("expect", "values", "ok"),
    [
        ({"value_gte": 1}, (1.0, 2.0), True),
        ({"value_gte": 1}, (1.0, 0.5), False),
        ({"value_lte": 0.01}, (0.001,), True),
        ({"value_gte": 0.9, "value_lte": 1}, (0.95, 1.0), True),
        ({"value_gte": 0.9, "value_lte": 1}, (0.95, 1.5), False),
        ({"value_eq": 0}, (0.0, -0.0), True),
        ({"value_eq": 0}, (), False),  # no samples is not "all zero"
        ({"value_gte": 0}, (math.nan,), False),
        ({"value_lte": math.inf}, (math.inf,), True),
        ({"empty": True}, (), True),
        ({"empty": True}, (1.0,), False),
        ({"nonempty": True}, (0.0,), True),
        ({"nonempty": True}, (), False),
    ],
)
def test_verdicts(expect: dict[str, Any], values: tuple[float, ...], ok: bool) -> None:
    assert Expect.model_validate(expect).judge(result(*values)).ok is ok


def test_a_failing_verdict_names_the_failing_samples() -> None:
    verdict = Expect(value_gte=1).judge(result(1.0, 0.0, 2.0))
    assert verdict.reason == 'expected every sample >= 1; 1 of 3 samples not: {instance="i1"} 0'


def test_long_verdicts_are_cut() -> None:
    verdict = Expect(empty=True).judge(result(*[1.0] * 12))
    assert verdict.reason.endswith("; and 7 more")


@pytest.mark.parametrize(
    ("expect", "fragment"),
    [
        ({}, "set exactly one"),
        ({"value_eq": 1, "empty": True}, "found value_eq, empty"),
        ({"empty": False}, "empty: true or nonempty: true"),
        ({"value_gte": 2, "value_lte": 1}, "no value can satisfy both"),
        ({"value_eq": "NaN"}, "cannot be NaN"),
        ({"value_gt": 1}, "Extra inputs"),
    ],
)
def test_bad_conditions_are_refused(expect: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Expect.model_validate(expect)
