"""The backend a config names: the embedded SQLite file (default) or PostgreSQL (storage.backend)."""

from __future__ import annotations

from daemon.config import LoadedConfig
from daemon.storage.database import Database
from daemon.storage.sql import Backend


def backend_for(loaded: LoadedConfig) -> Backend:
    """Not opened yet: the caller opens it (in a thread) and closes it."""
    return Database(loaded.db_path, synchronous=loaded.config.storage.synchronous)
