"""Telling people: itsmd's own states sent out to where people are paged.

* ``publish``: every state that needs a person, posted as an alert to Alertmanagers (``notify.alertmanagers``).
"""
