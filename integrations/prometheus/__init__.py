"""Prometheus's HTTP API: instant queries for runbook checks."""
