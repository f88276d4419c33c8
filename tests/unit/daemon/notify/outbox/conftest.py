"""A real local webhook receiver (aiohttp) for the outbox tests: what it got, and the answers it gives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.daemon.notify.outbox.receiver_server import Receiver


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
