"""The hash chain over audit events, and the two files kept outside the database: the key and the anchor.

Each event's mac is HMAC-SHA256(key, canonical(event, previous event's mac)). The key lives in a file the
database does not hold, so write access to the database alone cannot produce a valid mac: an edited,
inserted or reordered event, or a gap in the sequence numbers, shows. Deleting the newest events leaves no
gap, so the daemon also writes the head (sequence number and mac of the newest committed event) to the
anchor file beside the key; the chain must reach it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import StorageError

log = logging.getLogger(__name__)

FORMAT = "itsmd-audit/1"
"""First element of every canonical form: a later format cannot be confused with this one."""
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Head:
    """The newest event of a chain: its sequence number and mac."""

    seq: int
    mac: str


ORIGIN = Head(0, "")
"""Before the first event: the first event's previous mac is empty."""
CHAIN_STARTED = ("audit", "chain", "chain_started")
"""record_type, record_id and action of the first event of every chain (sequence number 1)."""


Fields = tuple[int, float, str, str, str, str, str | None, str | None]
"""What a mac covers besides the previous mac: seq, at, actor, record_type, record_id, action, before, after;
`at` a float as SQLite's REAL column returns it, before and after the exact JSON text stored."""


def canonical(fields: Fields, prev_mac: str) -> bytes:
    """An unambiguous encoding: a JSON array (quoted, escaped strings; null apart from "")."""
    return json.dumps([FORMAT, *fields, prev_mac], separators=(",", ":")).encode()


def event_mac(key: bytes, fields: Fields, prev_mac: str) -> str:
    return hmac.digest(key, canonical(fields, prev_mac), "sha256").hex()


def anchor_path(key_file: Path) -> Path:
    """The anchor lives beside the key (audit.key -> audit.head): where the database's writers cannot reach."""
    return key_file.with_suffix(".head")


def load_key(path: Path) -> bytes:
    """The key of an existing key file; StorageError if it cannot be read or is not a key."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read the audit key file {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise StorageError(f"the audit key file {path} does not hold a key ({KEY_BYTES * 2} hex digits)")
    if path.stat().st_mode & 0o077:
        log.warning("the audit key file %s can be read by other users: chmod 600 it", path)
    return key


def create_key(path: Path) -> bytes:
    """A new random key in a new file of mode 0600; the key of the file if another process made it first."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_key(path)
    except OSError as exc:
        raise StorageError(f"cannot create the audit key file {path}: {exc}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    _sync_dir(path.parent)
    log.info("created the audit key file %s: keep it, and back it up apart from the database", path)
    return key


def read_anchor(path: Path) -> Head | None:
    """The anchored head; None if there is no anchor file; StorageError if it is not an anchor."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read the audit anchor {path}: {exc}") from exc
    try:
        doc = json.loads(text)
        head = Head(int(doc["seq"]), str(doc["mac"]))
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"the audit anchor {path} is not an anchor file") from None
    return head


def write_anchor(path: Path, head: Head) -> None:
    """Replace the anchor atomically (a crash leaves the old or the new one, never half of one)."""
    # A name of its own per write (mode 0600): a write still running in its thread after its task was
    # cancelled must not mix its bytes into the next one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"seq": head.seq, "mac": head.mac}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    # The new name must survive a power cut too; some filesystems refuse fsync on a folder: nothing to do.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
