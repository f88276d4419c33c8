"""The steady ingest load of bench/failover.py: new alerts and re-sends of acknowledged ones, spread over the
replicas in rotation, every answer logged with its send and answer times.

Each request is one ``POST /api/v2/alerts`` of ``batch`` alerts, a ``new_fraction`` of them never sent before
(a unique ``instance`` label), the rest re-sends of alerts already acknowledged (same labels and startsAt,
``endsAt`` moved on, as Prometheus re-sends). An alert counts as acknowledged once a request carrying it was
answered 2xx, by whichever replica.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

JOB = "bench-failover"  # the job label of every alert sent: how the final check finds them in the database


@dataclass(frozen=True)
class Outcome:
    """One request: where it went, when, and how it ended (status None: no HTTP answer, see ``error``)."""

    replica: str
    sent: float  # time.monotonic()
    done: float
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def alert_json(n: int, starts_at: str, now: datetime) -> dict[str, object]:
    """Alert number ``n``: its labels depend on ``n`` only, so a re-send is the same alert."""
    labels = {
        "alertname": f"Failover{n % 20}",
        "service": f"svc-{(n // 20) % 50}",
        "instance": f"fo-{n}",
        "job": JOB,
        "severity": "warning",
    }
    return {
        "labels": labels,
        "annotations": {"summary": f"failover bench alert {n}"},
        "startsAt": starts_at,
        "endsAt": _rfc3339(now + timedelta(minutes=4)),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }


@dataclass
class Load:
    """Workers that keep ``concurrency`` requests in flight at most ``rate`` requests/s (0: no limit)."""

    urls: Callable[[], list[tuple[str, str]]]  # (replica name, ingest URL) of the replicas in rotation now
    concurrency: int = 8
    rate: float = 100.0
    batch: int = 10
    new_fraction: float = 0.5
    timeout: float = 5.0
    seed: int = 1
    outcomes: list[Outcome] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    acked_by: dict[int, tuple[str, float]] = field(default_factory=dict)  # the first 2xx: replica, answer time
    _acked_list: list[int] = field(default_factory=list)
    _starts: dict[int, str] = field(default_factory=dict)
    _next_id: int = 0
    _turn: int = 0
    _next_slot: float = 0.0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # the load's shape, not a secret

    def _body(self) -> tuple[list[int], bytes]:
        now = datetime.now(UTC)
        ids: list[int] = []
        for _ in range(self.batch):
            if self._acked_list and self._random.random() >= self.new_fraction:
                ids.append(self._random.choice(self._acked_list))
            else:
                n = self._next_id
                self._next_id += 1
                self._starts[n] = _rfc3339(now)
                ids.append(n)
        ids = list(dict.fromkeys(ids))  # one alert once per request
        return ids, json.dumps([alert_json(n, self._starts[n], now) for n in ids]).encode()

    async def _pace(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        slot = max(self._next_slot, now)
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _worker(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._pace()
            targets = self.urls()
            if not targets or stop.is_set():
                await asyncio.sleep(0.05)
                continue
            name, url = targets[self._turn % len(targets)]
            self._turn += 1
            ids, body = self._body()
            sent = time.monotonic()
            status: int | None = None
            error = ""
            try:
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = type(exc).__name__
            outcome = Outcome(name, sent, time.monotonic(), status, error)
            self.outcomes.append(outcome)
            if outcome.ok:
                for n in ids:
                    if n not in self.acked:
                        self.acked.add(n)
                        self.acked_by[n] = (name, outcome.done)
                        self._acked_list.append(n)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; the requests in flight then finish (or time out) first."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency * 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            await asyncio.gather(*(self._worker(http, stop) for _ in range(self.concurrency)))


def recovered_at(outcomes: list[Outcome], replica: str, since: float, until: float) -> float | None:
    """When ``replica`` answered ingest 2xx again after ``since``: the first 2xx answer to a request sent after
    its last failed one (sent before ``until``), or after ``since`` if none failed; None if never."""
    mine = [o for o in outcomes if o.replica == replica and since <= o.done and o.sent < until]
    last_failure = max((o.sent for o in mine if not o.ok), default=since)
    oks = [o.done for o in mine if o.ok and o.sent >= last_failure]
    return min(oks) if oks else None
