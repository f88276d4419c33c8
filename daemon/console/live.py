"""Live pages: committed changes announced to every open console page by server-sent events.

The hub hears each batch after it is durable (the writer's commit listener), so a page that reloads on an
announcement sees what the announcement is about. Announcements name record kinds and ids only, never content:
the page fetches what it shows through the same authenticated routes as always. They are coalesced over
`COALESCE` seconds, so a storm of commits costs each connected page a few small messages a second, and each
page has a bounded queue: a page that cannot keep up gets one `resync` instead of an ever-growing backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Hashable, Mapping

from aiohttp import web

from daemon.storage.database import Batch, Statement

log = logging.getLogger(__name__)

COALESCE = 0.25
"""Seconds over which commits are gathered into one announcement."""
QUEUE = 16
"""Announcements a page may fall behind by before it is told to resync."""
HEARTBEAT = 15.0
"""Seconds between comments on an idle stream, so proxies keep it open and a dead client is noticed."""
RETRY_MS = 2000
"""EventSource reconnect delay after the daemon went away (a restart): pages come back by themselves."""


def _record_id(key: Hashable) -> int | None:
    if isinstance(key, int):
        return key
    if isinstance(key, tuple) and key and isinstance(key[0], int):
        return key[0]
    return None


class LiveHub:
    def __init__(self, topics: Mapping[Statement, str]) -> None:
        self._topics = dict(topics)
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._pending: dict[str, set[int]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False
        self.sent = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def on_commit(self, batch: Batch) -> None:
        """Writer commit listener: note the ids of the records of interest, announce them shortly."""
        if not self._subscribers:
            return
        found = False
        for statement, keyed in batch.upserts.items():
            topic = self._topics.get(statement)
            if topic is not None and keyed:
                ids = self._pending.setdefault(topic, set())
                ids.update(i for i in map(_record_id, keyed) if i is not None)
                found = True
        for statement, appended in batch.appends.items():
            topic = self._topics.get(statement)
            if topic is not None and appended:
                ids = self._pending.setdefault(topic, set())
                ids.update(row[0] for row in appended if row and isinstance(row[0], int))
                found = True
        if found and self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(COALESCE, self._announce)

    def _announce(self) -> None:
        self._flush = None
        if not self._pending:
            return
        message = json.dumps({kind: sorted(ids) for kind, ids in self._pending.items()}, separators=(",", ":"))
        self._pending = {}
        for queue in list(self._subscribers):
            self._put(queue, message)

    def _put(self, queue: asyncio.Queue[str], message: str) -> None:
        if queue.full():
            # Too far behind: drop what it has not read and tell it to reload whatever it shows.
            while not queue.empty():
                queue.get_nowait()
            message = '{"resync":true}'
        queue.put_nowait(message)
        self.sent += 1

    def close(self) -> None:
        """At shutdown: every stream ends, so the HTTP server's drain is not held up by open pages."""
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait("")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """The SSE response of one page; ends when the client goes away or the daemon stops."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        self._subscribers.add(queue)
        try:
            await response.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
            while not self._closed:
                try:
                    message = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if not message:
                    break
                await response.write(f"event: changed\ndata: {message}\n\n".encode())
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._subscribers.discard(queue)
        return response
