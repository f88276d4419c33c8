"""Waiting for something with a time limit measured by the engine's (injectable) sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def race(waitable: Awaitable[Any], seconds: float, sleep: Callable[[float], Awaitable[None]]) -> bool:
    """True when waitable finished first, False when `seconds` of `sleep` passed."""
    waiter = asyncio.ensure_future(waitable)
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        done, _ = await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (waiter, timer):
            if not fut.done():
                fut.cancel()
    return waiter in done
