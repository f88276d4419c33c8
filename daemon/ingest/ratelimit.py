"""Per-client token buckets for the ingest endpoints: 429 with Retry-After past the configured rate."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_CLIENTS = 10_000
"""Buckets kept at most; past this, buckets that have refilled are dropped (they hold no information)."""


class RateLimiter:
    def __init__(self, rate: float, burst: int, *, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, round(2 * rate)))
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}
        """client -> (tokens, when they were counted)"""

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str) -> float | None:
        """Spend one token of client's bucket; None if allowed, else seconds until a token is there."""
        now = self._now()
        tokens, then = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if client not in self._buckets and len(self._buckets) >= MAX_CLIENTS:
            self._forget_full(now)
        self._buckets[client] = (tokens - 1.0, now)
        return None

    def _forget_full(self, now: float) -> None:
        full = [c for c, (t, then) in self._buckets.items() if t + (now - then) * self.rate >= self.burst]
        for client in full:
            del self._buckets[client]
        # Still full (many clients all busy): drop the longest-known ones rather than grow without bound.
        for client in list(self._buckets)[: max(0, len(self._buckets) - MAX_CLIENTS + 1)]:
            del self._buckets[client]
