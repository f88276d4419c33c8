"""Load benchmark: itsmd vs a bare-aiohttp ceiling vs Alertmanager 0.25 (see bench/README.md)."""
