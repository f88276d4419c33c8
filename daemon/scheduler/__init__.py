"""Timed work: SLA deadlines now; drills, retention and reports later. See scheduler.py."""
