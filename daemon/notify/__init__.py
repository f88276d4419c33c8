"""Notifications sent from itsmd: signed webhooks through a durable outbox, and publishing to Alertmanager."""
