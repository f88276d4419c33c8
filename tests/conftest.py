"""Fixtures every test package may use."""

from tests.postgres import postgres_dsn

__all__ = ["postgres_dsn"]
