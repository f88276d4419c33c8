"""Continuity drills (ISO/IEC 20000-1 8.7.1): recovery runbooks run on a schedule, recovery time measured."""
