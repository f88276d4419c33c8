"""Sending: one loop per receiver posts its due deliveries one at a time, in outbox order.

One at a time per receiver keeps an incident's events in order even across retries (Outbox.due holds back
a later event of an incident until the earlier one is done) and makes the rate limit simple. A 2xx answer is
delivered; anything else, a timeout or a refused connection is a failed attempt that backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from daemon.clock import Clock
from daemon.notify.outbox import signing
from daemon.notify.outbox.deliveries import Delivery
from daemon.notify.outbox.outbox import Outbox
from daemon.runbook.config import secret_text

log = logging.getLogger(__name__)

IDLE_POLL = 5.0
"""Longest sleep with nothing due: a safety net, since commits and due times wake the loop."""


class Deliverer:
    def __init__(self, outbox: Outbox, session: aiohttp.ClientSession, clock: Clock) -> None:
        self._outbox = outbox
        self._session = session
        self._clock = clock
        self._wakes = {name: asyncio.Event() for name in outbox.receivers}

    async def run(self) -> None:
        """All receivers' loops; returns when cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._fan_out())
            for name in self._outbox.receivers:
                group.create_task(self._receiver_loop(name))

    async def _fan_out(self) -> None:
        while True:
            await self._outbox.wake.wait()
            self._outbox.wake.clear()
            for wake in self._wakes.values():
                wake.set()

    async def _receiver_loop(self, name: str) -> None:
        wake = self._wakes[name]
        while True:
            wake.clear()
            await self.deliver_due(name)
            now = self._clock.now()
            nxt = self._outbox.next_due(name)
            wait = IDLE_POLL if nxt is None else min(max(nxt - now, 0.0), IDLE_POLL)
            limit_wait = self._outbox.limits[name].wait_time(now)
            if nxt is not None and nxt <= now:
                wait = max(limit_wait, 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)

    async def deliver_due(self, name: str) -> int:
        """Attempt what is due for the receiver now; the number of attempts made."""
        attempts = 0
        limit = self._outbox.limits[name]
        for d in self._outbox.due(name, self._clock.now()):
            if limit.wait_time(self._clock.now()) > 0:
                break
            limit.take(self._clock.now())
            await self.attempt(d)
            attempts += 1
        return attempts

    async def attempt(self, d: Delivery) -> None:
        receiver = self._outbox.receivers[d.receiver]
        body = d.body.encode()
        timestamp = int(self._clock.now())
        headers = signing.headers(secret_text(receiver.secret.secret).encode(), d.event_id, timestamp, body)
        try:
            # No redirects: a redirect would carry the signed body to wherever the answer points.
            async with self._session.post(
                receiver.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=receiver.timeout),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                ok, error = 200 <= resp.status < 300, f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            self._outbox.delivered(d, self._clock.now())
        else:
            log.debug("webhook %s to %s failed: %s", d.event_id, d.receiver, error)
            self._outbox.failed(d, self._clock.now(), error)
