"""Correlation: alerts into incidents, by the rules in rules/."""
