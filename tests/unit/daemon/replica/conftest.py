"""A PostgreSQL database holding the lease table, as the PostgreSQL schema defines it (issue 14)."""

from __future__ import annotations

import psycopg
import pytest

LEASE_TABLE = (
    "CREATE TABLE IF NOT EXISTS leader_lease (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, "
    "holder TEXT, url TEXT, expires_at TIMESTAMPTZ)"
)


@pytest.fixture
def lease_dsn(postgres_dsn: str) -> str:
    """A fresh database with the one lease row at epoch 0, held by no one."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(LEASE_TABLE)
        conn.execute("INSERT INTO leader_lease (id, epoch) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    return postgres_dsn
