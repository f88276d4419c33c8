"""Prometheus: instant queries for runbook checks, and the wiring kit (scrape config, rules, dashboard)."""
