"""Metrics: persisted counters and the /metrics collector that reads memory, never the database."""
