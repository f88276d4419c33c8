"""Problem management (ISO/IEC 20000-1 8.6.3): recurring incidents, root causes, known errors."""
