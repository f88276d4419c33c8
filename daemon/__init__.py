"""itsmd: ISO/IEC 20000 service management run from Prometheus and Alertmanager."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("itsmd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
