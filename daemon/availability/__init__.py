"""Service availability and error budgets from incident history (ISO/IEC 20000 8.7.2)."""
