from collections.abc import AsyncIterator

import pytest

from tests.unit.integrations.upstream import Upstream, serving


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving() as server:
        yield server
