from __future__ import annotations

import pytest

from daemon.ingest.ratelimit import RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refused_with_time_to_wait() -> None:
    now = Ticks()
    limiter = RateLimiter(2.0, 3, now=now)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)


def test_tokens_come_back_at_the_rate() -> None:
    now = Ticks()
    limiter = RateLimiter(2.0, 1, now=now)
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    now.t += 0.5
    assert limiter.take("a") is None


def test_clients_have_their_own_buckets() -> None:
    limiter = RateLimiter(1.0, 1, now=Ticks())
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    assert limiter.take("b") is None


def test_default_burst_is_twice_the_rate() -> None:
    assert RateLimiter(5.0, 0).burst == 10.0
    assert not RateLimiter(0.0, 0).enabled


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("daemon.ingest.ratelimit.MAX_CLIENTS", 100)
    now = Ticks()
    limiter = RateLimiter(1.0, 5, now=now)
    for i in range(1000):
        limiter.take(f"client-{i}")
    assert len(limiter._buckets) <= 100
