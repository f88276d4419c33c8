from __future__ import annotations

from daemon.notify.outbox.throttle import StormDetector, TokenBucket


def test_the_rate_limit_allows_a_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    now = 100.0
    for _ in range(3):
        assert bucket.wait_time(now) == 0.0
        bucket.take(now)
    assert bucket.wait_time(now) == 0.5
    assert bucket.wait_time(now + 0.5) == 0.0


def test_no_rate_limit_never_waits() -> None:
    bucket = TokenBucket(rate=0.0, burst=1)
    for _ in range(100):
        bucket.take(1.0)
    assert bucket.wait_time(1.0) == 0.0


def test_a_storm_is_more_than_the_threshold_within_a_minute() -> None:
    storm = StormDetector(threshold=3)
    assert [storm.storming(t) for t in (0.0, 10.0, 20.0, 30.0)] == [False, False, False, True]
    assert not storm.storming(75.0)  # 0 and 10 left the window: 20, 30, 75
    assert not StormDetector(threshold=0).storming(1.0)
