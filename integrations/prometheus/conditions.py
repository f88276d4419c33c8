"""The `expect:` of promql and wait_until steps: what a query's result must look like for the check to pass.

Exactly one kind of condition::

    expect: {value_gte: 1}                   every sample >= 1 (value_lte with it makes a band)
    expect: {value_eq: 0}                    every sample == 0
    expect: {empty: true}                    no samples at all (the alert's expression no longer matches)
    expect: {nonempty: true}                 at least one sample

A value condition needs at least one sample: an empty result is no evidence that a service is healthy, it
is more often a typo in a label or a target that disappeared. NaN satisfies no value condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, model_validator

from integrations.prometheus.client import QueryResult, Sample

SHOWN_SAMPLES = 5
"""Samples named in a verdict; the rest are counted."""


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    """One line: what was expected and what was found."""


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value_gte: float | None = None
    value_lte: float | None = None
    value_eq: float | None = None
    empty: bool | None = None
    nonempty: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Expect:
        kinds = [
            name
            for name, is_set in (
                ("value_gte/value_lte", self.value_gte is not None or self.value_lte is not None),
                ("value_eq", self.value_eq is not None),
                ("empty", self.empty is not None),
                ("nonempty", self.nonempty is not None),
            )
            if is_set
        ]
        if len(kinds) != 1:
            raise ValueError(
                "set exactly one of value_gte (optionally with value_lte), value_lte, value_eq, empty, nonempty"
                + (f"; found {', '.join(kinds)}" if kinds else "")
            )
        if self.empty is False or self.nonempty is False:
            raise ValueError("write the condition you expect: empty: true or nonempty: true")
        for name in ("value_gte", "value_lte", "value_eq"):
            if math.isnan(getattr(self, name) or 0.0):
                raise ValueError(f"{name} cannot be NaN (nothing equals NaN)")
        if self.value_gte is not None and self.value_lte is not None and self.value_gte > self.value_lte:
            raise ValueError("value_gte is above value_lte: no value can satisfy both")
        return self

    def describe(self) -> str:
        if self.empty:
            return "no samples"
        if self.nonempty:
            return "at least one sample"
        if self.value_eq is not None:
            return f"every sample == {self.value_eq:g}"
        parts = []
        if self.value_gte is not None:
            parts.append(f">= {self.value_gte:g}")
        if self.value_lte is not None:
            parts.append(f"<= {self.value_lte:g}")
        return "every sample " + " and ".join(parts)

    def holds_for(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.value_eq is not None:
            return value == self.value_eq
        low_ok = self.value_gte is None or value >= self.value_gte
        high_ok = self.value_lte is None or value <= self.value_lte
        return low_ok and high_ok

    def judge(self, result: QueryResult) -> Verdict:
        samples = result.samples
        count = f"{len(samples)} sample" + ("" if len(samples) == 1 else "s")
        if self.empty:
            ok = not samples
            return Verdict(ok, f"expected no samples, got {count}" + ("" if ok else f": {_show(samples)}"))
        if self.nonempty:
            return Verdict(bool(samples), f"expected at least one sample, got {count}")
        if not samples:
            return Verdict(False, f"expected {self.describe()}, got no samples")
        failing = [s for s in samples if not self.holds_for(s.value)]
        if not failing:
            return Verdict(True, f"{count}, {self.describe()}: {_show(samples)}")
        return Verdict(False, f"expected {self.describe()}; {len(failing)} of {count} not: {_show(failing)}")


def format_sample(sample: Sample) -> str:
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
    return f"{{{labels}}} {sample.value:g}"


def _show(samples: list[Sample]) -> str:
    shown = "; ".join(format_sample(s) for s in samples[:SHOWN_SAMPLES])
    more = len(samples) - SHOWN_SAMPLES
    return shown + (f"; and {more} more" if more > 0 else "")
