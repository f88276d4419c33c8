"""Housekeeping: retention by policy, rollups that keep past figures exact, and giving space back."""
