"""Per-receiver rate limit (a token bucket) and storm detection (events in the last minute)."""

from __future__ import annotations

from collections import deque

STORM_WINDOW = 60.0


class TokenBucket:
    """`rate` requests a second with bursts of `burst`; rate 0 means no limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self._tokens = self.burst
        self._at: float | None = None

    def wait_time(self, now: float) -> float:
        """Seconds until a request may be sent (0: now). Does not take the token."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        if self.rate <= 0:
            return
        self._refill(now)
        self._tokens -= 1.0

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now


class StormDetector:
    """Counts a receiver's events over the last minute; above `threshold` (0: never) the receiver is in a storm."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._times: deque[float] = deque()

    def storming(self, now: float) -> bool:
        """Record one event at `now`; True if it makes more than `threshold` within the window."""
        self._times.append(now)
        while self._times and self._times[0] <= now - STORM_WINDOW:
            self._times.popleft()
        return self.threshold > 0 and len(self._times) > self.threshold
