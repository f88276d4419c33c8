"""Ingest: the two HTTP entry points for alerts, their parsing, validation and answers."""
