"""The backend a config names: the embedded SQLite file (default) or PostgreSQL (storage.backend)."""

from __future__ import annotations

from daemon.config import LoadedConfig
from daemon.runbook.config import secret_text
from daemon.storage.database import Database
from daemon.storage.postgres.backend import PostgresBackend
from daemon.storage.sql import Backend


def backend_for(loaded: LoadedConfig) -> Backend:
    """Not opened yet: the caller opens it (in a thread) and closes it."""
    storage = loaded.config.storage
    if storage.backend == "postgres" and storage.dsn is not None:
        return PostgresBackend(
            secret_text(storage.dsn),
            pool_min=storage.pool.min,
            pool_max=storage.pool.max,
            connect_timeout=storage.connect_timeout,
        )
    return Database(loaded.db_path, synchronous=storage.synchronous)
