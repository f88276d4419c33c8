"""Connectors to the systems around itsmd, one folder each (formats, clients, config)."""
