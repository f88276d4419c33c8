from __future__ import annotations

import asyncio
import logging

import pytest

from daemon.tasks import TaskRegistry


async def test_tasks_that_end_by_themselves_leave_the_registry() -> None:
    tasks = TaskRegistry()
    done = asyncio.Event()

    async def quick() -> None:
        done.set()

    for n in range(50):
        tasks.start(f"run-{n}", quick())
    blocker = asyncio.Event()

    async def waits() -> None:
        await blocker.wait()

    tasks.start("long", waits())
    await done.wait()
    for _ in range(3):  # done callbacks run on the loop iterations after the task finished
        await asyncio.sleep(0)
    assert len(tasks) == 1
    assert await tasks.wait("run-7", 0.1)  # gone already counts as finished
    blocker.set()
    assert await tasks.wait("long", 1.0)
    await tasks.close()


async def test_a_failure_of_a_task_nobody_waits_for_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskRegistry()

    async def boom() -> None:
        raise RuntimeError("disk on fire")

    with caplog.at_level(logging.ERROR, logger="daemon.tasks"):
        tasks.start("boom", boom())
        for _ in range(3):
            await asyncio.sleep(0)
    assert len(tasks) == 0
    assert "task boom failed: RuntimeError('disk on fire')" in caplog.text
    await tasks.close()
