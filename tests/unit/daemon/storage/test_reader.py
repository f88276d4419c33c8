from __future__ import annotations

import asyncio
import threading

from daemon.storage.database import Batch
from daemon.storage.reader import Reader
from daemon.storage.sql import Backend, Sql


async def test_reads_run_off_the_loop_on_one_connection_per_thread_and_see_commits(sql_backend: Backend) -> None:
    reader = Reader(sql_backend, threads=2)
    seen: dict[int, set[int]] = {}
    loop_thread = threading.get_ident()

    def count(sql: Sql, name: str) -> int:
        seen.setdefault(threading.get_ident(), set()).add(id(sql))
        return int(sql.scalar("SELECT count(*) FROM counters WHERE name = ?", (name,)))

    try:
        assert await reader.run(count, "c") == 0
        batch = Batch()
        batch.counters[("c", "{}")] = 1.0
        sql_backend.write(batch)
        results = await asyncio.gather(*(reader.run(count, "c") for _ in range(20)))
        assert results == [1] * 20
        assert loop_thread not in seen
        assert all(len(connections) == 1 for connections in seen.values()) and len(seen) <= 2
        assert await reader.incident(1) is None and await reader.alerts(None, 10, 0) == []
    finally:
        reader.close()
