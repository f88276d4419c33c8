"""The two ingest paths as inbox kinds: how a stored body is parsed, on a follower and again on the leader.

Both sides call the same functions as a direct request (daemon/ingest/handlers.py), so a body refused on a
follower gets the leader's 4xx and a body a follower stored is read as the leader would have read it.
"""

from __future__ import annotations

from daemon.alerts.table import AlertTable
from daemon.config import IngestConfig
from daemon.errors import InvalidInput
from daemon.ingest import handlers, normalize
from daemon.model import IncomingAlert, Source

WEBHOOK = "alertmanager_webhook"
"""POST /webhook/alertmanager"""
V2 = "api_v2_alerts"
"""POST /api/v2/alerts"""
KINDS = (WEBHOOK, V2)
SOURCES = {WEBHOOK: Source.ALERTMANAGER, V2: Source.PROMETHEUS}
"""The path an alert is stored as having come by (as for a direct request of that kind)."""


def parse(
    kind: str, body: bytes, limits: IngestConfig, now: float, held: AlertTable | None = None
) -> list[IncomingAlert]:
    """The alerts of a body of `kind`, or the RequestError a direct request gets. `held`: the alerts in
    memory (the leader's); a follower has none."""
    if kind == WEBHOOK:
        return handlers.parse_webhook(body, limits, now, held.get if held is not None else normalize.unknown_alert)
    if kind == V2:
        known = held.fingerprint_of if held is not None else normalize.unknown_labels
        return handlers.parse_postable(body, limits, now, known)
    raise InvalidInput("invalid_payload", f"unknown inbox kind {kind!r}")
