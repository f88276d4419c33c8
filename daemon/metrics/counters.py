"""Counters that survive restarts: kept in memory, written with the next flush, loaded at start.

A counter that goes back to zero when the daemon restarts makes every rate() spike; Prometheus can only
guess at resets. These start from their stored values instead. After a kill -9 the increments of the last
flush interval (1 s by default) that were not part of a durable change can be lost.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from daemon.storage.database import Batch

LabelPairs = tuple[tuple[str, str], ...]


class Marks(Protocol):
    """What a CounterStore needs of the writer (daemon.storage.writer.GroupCommitWriter)."""

    def touched(self) -> None: ...

    def add_collector(self, collector: Callable[[Batch, bool], None]) -> None: ...


class CounterStore:
    def __init__(self, writer: Marks) -> None:
        self._writer = writer
        self._values: dict[tuple[str, LabelPairs], float] = {}
        self._dirty: set[tuple[str, LabelPairs]] = set()
        writer.add_collector(self._collect)

    def restore(self, stored: Mapping[tuple[str, str], float]) -> None:
        for (name, labels), value in stored.items():
            pairs: LabelPairs = tuple(sorted(json.loads(labels).items()))
            self._values[(name, pairs)] = value

    def inc(self, name: str, labels: LabelPairs = (), amount: float = 1.0) -> None:
        key = (name, labels)
        self._values[key] = self._values.get(key, 0.0) + amount
        if key not in self._dirty:
            self._dirty.add(key)
            self._writer.touched()

    def ensure(self, name: str, labels: LabelPairs = ()) -> None:
        """Make a series exist at 0 so dashboards show no gap before the first event."""
        if (name, labels) not in self._values:
            self.inc(name, labels, 0.0)

    def get(self, name: str, labels: LabelPairs = ()) -> float:
        return self._values.get((name, labels), 0.0)

    def series(self, name: str) -> Iterable[tuple[LabelPairs, float]]:
        return ((labels, v) for (n, labels), v in self._values.items() if n == name)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels).get(label, "") for (n, labels) in self._values if n == name}

    def _collect(self, batch: Batch, lazy: bool) -> None:
        # Always, not only on the periodic flush: a handful of rows, and an incident's counter then
        # commits with the incident itself, so the two agree even after a kill -9.
        for key in self._dirty:
            name, labels = key
            batch.counters[(name, json.dumps(dict(labels), sort_keys=True))] = self._values[key]
        self._dirty.clear()


class PersistedHistogram:
    """A Prometheus histogram whose bucket counts live in a CounterStore."""

    def __init__(self, counters: CounterStore, name: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.buckets = tuple(sorted(buckets))
        self._counters = counters
        self._keys = [(("le", _le(b)),) for b in self.buckets] + [(("le", "+Inf"),)]
        for key in self._keys:
            counters.ensure(f"{name}_bucket", key)
        counters.ensure(f"{name}_sum")
        counters.ensure(f"{name}_count")

    def observe(self, value: float) -> None:
        # Per-bucket (not cumulative) counts: one increment per observation; cumulated at scrape.
        self._counters.inc(f"{self.name}_bucket", self._keys[bisect.bisect_left(self.buckets, value)])
        self._counters.inc(f"{self.name}_sum", (), value)
        self._counters.inc(f"{self.name}_count")

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        running = 0.0
        out = []
        for key in self._keys:
            running += self._counters.get(f"{self.name}_bucket", key)
            out.append((key[0][1], running))
        return out, self._counters.get(f"{self.name}_sum")


def _le(bound: float) -> str:
    return repr(float(bound))
