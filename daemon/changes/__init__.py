"""Change records (ISO/IEC 20000-1 8.5.1): every live or drill runbook run is a change."""
