"""Counter rows: loading the stored counters a starting daemon continues from (daemon.metrics.counters).

Counters are written by the backend with each commit, keyed by name and labels (canonical JSON).
"""

from __future__ import annotations

from daemon.storage.sql import Sql


def load_counters(sql: Sql) -> dict[tuple[str, str], float]:
    """Every stored counter by (name, labels JSON)."""
    return {(r["name"], r["labels"]): r["value"] for r in sql.rows("SELECT name, labels, value FROM counters")}
