"""The PostgreSQL backend (storage.backend: postgres): the same tables as the SQLite file, on a server."""
