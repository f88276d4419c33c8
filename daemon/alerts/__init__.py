"""Alerts: the current state of every alert by fingerprint, deduplicated and expired in memory."""
