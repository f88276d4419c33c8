"""Runbooks: YAML files of steps the engine runs with verification, rollback, approvals, locks and a journal."""
