"""Replicas on one PostgreSQL: the leader lease, each replica's role, and the switch between roles."""
