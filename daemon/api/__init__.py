"""The HTTP API: ingest endpoints, REST reads, health and metrics."""
