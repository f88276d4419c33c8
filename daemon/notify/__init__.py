"""Telling people: itsmd's own states sent out to where people are paged.

* ``publish``: every state that needs a person, posted as an alert to Alertmanagers (``notify.alertmanagers``).
* ``outbox``: signed webhooks through a durable outbox (``notify.webhooks``), written with the change that caused them.
"""
