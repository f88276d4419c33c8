"""Durable storage: one SQLite file in WAL mode, written by one group-committing writer."""
