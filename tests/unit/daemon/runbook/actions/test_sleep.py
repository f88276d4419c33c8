"""sleep waits on the engine's sleep, so tests drive it with a ManualClock."""

from __future__ import annotations

import asyncio

import aiohttp

from daemon.clock import ManualClock
from daemon.runbook.actions.sleep import SleepSpec
from tests.unit.daemon.runbook.actions.context import context, plain
from tests.unit.daemon.runbook.harness import ManualSleeper


async def test_sleep_waits_for_its_duration_on_the_engine_clock() -> None:
    clock = ManualClock()
    sleeper = ManualSleeper(clock)
    action = SleepSpec.model_validate({"duration": "2m"}).build(plain)
    assert action.plan() == {"duration": "2m"}
    async with aiohttp.ClientSession() as session:
        ctx = context(session, clock=clock)
        ctx.sleep = sleeper
        task = asyncio.create_task(action.execute(ctx))
        await sleeper.added.wait()
        sleeper.advance(119)
        await asyncio.sleep(0)
        assert not task.done()
        sleeper.advance(1)
        outcome = await task
    assert outcome.ok and outcome.summary == "slept 2m"
