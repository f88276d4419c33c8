"""itsmd's states as alerts in Alertmanager, posted as Prometheus posts them (``POST /api/v2/alerts``)."""
