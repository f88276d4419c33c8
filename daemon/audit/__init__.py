"""The audit trail (ISO/IEC 20000-1 7.5, 8.7.3): an append-only, hash-chained record of every change to an
incident or problem, and of every approval decision on a runbook run (record type `run`): who, when, what, and
the record's fields before and after."""

from daemon.audit.log import SYSTEM, AuditLog

__all__ = ["SYSTEM", "AuditLog"]
