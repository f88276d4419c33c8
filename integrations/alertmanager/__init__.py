"""Alertmanager: its webhook payload (version 4), its v2 alert format and its fingerprint."""
