"""The monthly service report (ISO/IEC 20000-1 9.4 service reporting): model, period, renderers."""
