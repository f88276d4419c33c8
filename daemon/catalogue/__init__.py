"""The service catalogue (ISO/IEC 20000-1 8.2.2, 8.3.3): services, their targets and maintenance windows."""
