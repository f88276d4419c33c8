from __future__ import annotations

import time

from daemon.notify.outbox import signing
from tests.unit.daemon.notify.outbox.harness import documented_verify


def test_the_documented_snippet_verifies_a_signature() -> None:
    verify = documented_verify()
    body = b'{"id":"e1","kind":"incident_opened"}'
    now = int(time.time())
    headers = signing.headers(b"topsecret", "e1", now, body)
    assert headers[signing.EVENT_ID_HEADER] == headers["Idempotency-Key"] == "e1"
    assert headers[signing.TIMESTAMP_HEADER] == str(now)
    assert verify(b"topsecret", body, headers[signing.SIGNATURE_HEADER])
    assert not verify(b"othersecret", body, headers[signing.SIGNATURE_HEADER])
    assert not verify(b"topsecret", body + b" ", headers[signing.SIGNATURE_HEADER])


def test_the_timestamp_is_signed_so_an_old_request_cannot_be_replayed_as_new() -> None:
    verify = documented_verify()
    body = b"{}"
    old = int(time.time()) - 3600
    header = signing.headers(b"k", "e1", old, body)[signing.SIGNATURE_HEADER]
    assert not verify(b"k", body, header)  # too old
    fresh = header.replace(f"t={old}", f"t={int(time.time())}")
    assert not verify(b"k", body, fresh)  # a new timestamp does not match the signature


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    # Computed independently: printf '1.{}' | openssl dgst -sha256 -hmac k
    assert signing.signature(b"k", 1, b"{}") == "3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
