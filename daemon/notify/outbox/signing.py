"""Webhook signatures in the style of Stripe and GitHub: HMAC-SHA256 over "<timestamp>.<body>".

The timestamp is in the signed text so a captured request cannot be replayed later with a fresh timestamp;
the receiver rejects requests whose timestamp is too old. README.md ("Signed webhooks") shows how to verify.
"""

from __future__ import annotations

import hashlib
import hmac

EVENT_ID_HEADER = "Itsmd-Event-Id"
"""The idempotency key: the event's id, the same on every retry of that event."""
TIMESTAMP_HEADER = "Itsmd-Timestamp"
SIGNATURE_HEADER = "Itsmd-Signature"
SCHEME = "v1"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under the receiver's secret."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def headers(secret: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        "Idempotency-Key": event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}",
    }
