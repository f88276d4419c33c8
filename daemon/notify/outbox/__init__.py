"""Signed webhooks through a durable outbox: events are stored with the change that caused them, then delivered."""
