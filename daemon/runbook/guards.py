"""Loop and collision guards: a lock per rendered key, and a circuit breaker per runbook and key.

Both are rebuilt from the journal at start: a lock is held by the run whose row names it while the run is
active or held, and the breaker counts the admitted live runs whose rows carry its key.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

LockId = tuple[str | None, str]
"""(runbook, key) of a runbook-scoped lock, (None, key) of a global one: equal key strings of two runbooks
are two locks unless both say `concurrency.scope: global`."""


def lock_id(runbook: str, scope: str, key: str) -> LockId:
    return (None if scope == "global" else runbook, key)


class Locks:
    def __init__(self) -> None:
        self._holders: dict[LockId, int] = {}
        self._released: dict[LockId, asyncio.Event] = {}

    def holder(self, key: LockId) -> int | None:
        return self._holders.get(key)

    def try_take(self, key: LockId, run_id: int) -> bool:
        holder = self._holders.get(key)
        if holder is None or holder == run_id:
            self._holders[key] = run_id
            return True
        return False

    def release(self, key: LockId, run_id: int) -> None:
        if self._holders.get(key) == run_id:
            del self._holders[key]
            event = self._released.pop(key, None)
            if event is not None:
                event.set()

    async def released(self, key: LockId) -> None:
        """Returns when the key's current holder lets go (the caller then tries again)."""
        await self._released.setdefault(key, asyncio.Event()).wait()

    def held(self) -> dict[LockId, int]:
        return dict(self._holders)


class Breaker:
    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def record(self, runbook: str, key: str, at: float) -> None:
        self._hits[(runbook, key)].append(at)

    def count(self, runbook: str, key: str, now: float, window: float) -> int:
        hits = self._hits.get((runbook, key))
        if not hits:
            return 0
        while hits and hits[0] <= now - window:
            hits.popleft()
        return len(hits)

    def is_open(self, runbook: str, key: str, now: float, window: float, max_runs: int) -> bool:
        return self.count(runbook, key, now, window) >= max_runs

    def open_keys(self, runbook: str, now: float, window: float, max_runs: int) -> list[str]:
        return [k for (rb, k) in list(self._hits) if rb == runbook and self.is_open(rb, k, now, window, max_runs)]
