"""End-to-end tests: the real Prometheus and Alertmanager binaries talking to a real itsmd process."""
