"""Every background task is registered here, so shutdown can wait for it with a deadline or cancel it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            raise RuntimeError(f"task registry is closed; not starting {name}")
        task = asyncio.get_running_loop().create_task(coro, name=f"itsmd-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._forget(name, done))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        """A task that ended by itself leaves the registry (one task per runbook run would otherwise pile up
        until shutdown); its failure is logged here, since nobody may ever wait for it."""
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed: %r", name, task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    def every(self, name: str, interval: float, job: Callable[[], Awaitable[None] | None]) -> None:
        """Run job every interval seconds; a failing run is logged and the next one still happens."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    result = job()
                    if result is not None:
                        await result
                except Exception:
                    log.exception("periodic task %s failed", name)

        self.start(name, loop())

    async def cancel(self, *names: str) -> None:
        for name in names:
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def wait(self, name: str, deadline: float) -> bool:
        """Wait for a task to finish by itself; cancel it after deadline seconds. True if it finished."""
        task = self._tasks.pop(name, None)
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=deadline)
        if done:
            return True
        log.warning("task %s did not finish within %.1fs; cancelling it", name, deadline)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False

    async def close(self) -> None:
        self._closed = True
        await self.cancel(*list(self._tasks))
