"""Keyed digests of step output: HMAC-SHA256 with a key kept in the data directory.

A plain sha256 of unredacted output lets anyone who can read the journal (or the runs API) try candidate
values of a short secret until one matches; with a key they cannot. The key is 32 random bytes written as 64
hex characters to `<data_dir>/digest.key` (mode 0600) at the first start and kept from then on; the HMAC key
is those 64 characters as ASCII, so `openssl dgst -sha256 -hmac "$(cat digest.key)"` verifies a digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from daemon.errors import ConfigError, ConfigProblem

log = logging.getLogger(__name__)

KEY_FILE = "digest.key"
PREFIX = "hmac-sha256:"
"""Stored digests say what they are, so one made before the key existed (plain sha256) is not mistaken."""
_KEY_TEXT = re.compile(r"^[0-9a-f]{64}$")


def new_key() -> bytes:
    """A key for a process without a data directory (tests, one-off tools): digests made with it cannot be
    verified later, which is the safe side."""
    return secrets.token_hex(32).encode("ascii")


def load_key(path: Path) -> bytes:
    """The digest key in this file (runbooks.digest_key_file, default data_dir/digest.key), created
    (atomically, mode 0600) if there is none yet."""
    if not path.exists():
        _create(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read the digest key: {exc}")]) from None
    if not _KEY_TEXT.match(text):
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    None,
                    "",
                    "the digest key must be 64 lowercase hex characters (remove it to make a new one)",
                )
            ]
        )
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others than its owner; chmod 600 it", path)
    return text.encode("ascii")


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # link() fails if another process made the key meanwhile; theirs stands, and nobody sees a half file.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class OutputDigest:
    """Incremental HMAC-SHA256 of output as it streams in."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def hexdigest(self) -> str:
        return PREFIX + self._mac.hexdigest()


def output_digest(key: bytes, data: bytes) -> str:
    digest = OutputDigest(key)
    digest.update(data)
    return digest.hexdigest()
