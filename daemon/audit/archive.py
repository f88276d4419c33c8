"""`itsmd audit archive --before DATE --out FILE`: move old audit events to a file, the chain verifiable across.

Housekeeping never prunes the audit trail; this command is the one way it shrinks, and the one way past the
append-only triggers. In one transaction it
  1. picks the cut: the newest chained event before DATE (never the head: the daemon links the next event to
     it), and with it every older row (events sealed before the chain included);
  2. writes those events to FILE as JSON lines (a header, then one event a line, oldest first) and syncs it;
  3. records the cut in audit_cuts: the last archived event's seq, mac and id, the number of events, the
     file's SHA-256, and a keyed mac over all of that (a cut row cannot be forged without the key);
  4. deletes the archived rows: the delete trigger lets through only rows up to a recorded cut.
The file is written before the transaction commits: a failure leaves an extra file and nothing deleted.

`itsmd audit verify` then checks the stored chain from the newest cut on (its first event links to the cut's
mac); given the archive files (`--archive FILE`, oldest first) it checks each one's own chain, that it ends
exactly at its cut and that its digest is the cut's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.audit import store
from daemon.audit.chain import event_mac
from daemon.errors import InvalidInput, StorageError

FORMAT = "itsmd-audit-archive/1"
CUT_FORMAT = "itsmd-audit-cut/1"


@dataclass(frozen=True, slots=True)
class Cut:
    through_seq: int
    through_mac: str
    through_id: int
    at: float
    events: int
    archive_sha256: str
    mac: str

    def fields(self) -> list[Any]:
        return [
            CUT_FORMAT,
            self.through_seq,
            self.through_mac,
            self.through_id,
            self.at,
            self.events,
            self.archive_sha256,
        ]


def cut_mac(key: bytes, cut: Cut) -> str:
    return hmac.digest(key, json.dumps(cut.fields(), separators=(",", ":")).encode(), "sha256").hex()


def cuts(conn: sqlite3.Connection) -> list[Cut]:
    """Recorded cuts, oldest first (empty on a store before schema version 10)."""
    try:
        rows = conn.execute(
            "SELECT through_seq, through_mac, through_id, at, events, archive_sha256, mac FROM audit_cuts "
            "ORDER BY through_seq"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [Cut(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Archived:
    events: int
    through_seq: int


def archive(conn: sqlite3.Connection, key: bytes, before: float, out: Path, *, now: float) -> Archived:
    """Archive the events before `before` to `out` (which must not exist). InvalidInput when there is nothing
    to archive; StorageError when the file cannot be written."""
    if out.exists():
        raise InvalidInput("archive_exists", f"{out} exists: archives are never overwritten")
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = cuts(conn)
        after_id = done[-1].through_id if done else 0
        prev_mac = done[-1].through_mac if done else ""
        head = store.stored_head(conn)
        r = conn.execute(
            "SELECT id, seq, mac FROM audit_events WHERE seq IS NOT NULL AND at < ? AND seq < ? AND id > ? "
            "ORDER BY seq DESC LIMIT 1",
            (before, head.seq if head is not None else 0, after_id),
        ).fetchone()
        if r is None:
            raise InvalidInput("nothing_to_archive", "no chained event before that date (the newest is never archived)")
        through_id, through_seq, through_mac = r
        rows = conn.execute(
            f"SELECT {store.EVENT_COLUMNS} FROM audit_events WHERE id > ? AND id <= ? ORDER BY id",  # noqa: S608
            (after_id, through_id),
        ).fetchall()
        digest = _write(out, rows, prev_mac=prev_mac, through_seq=through_seq)
        cut = Cut(through_seq, through_mac, through_id, now, len(rows), digest, "")
        cut = dataclasses.replace(cut, mac=cut_mac(key, cut))
        conn.execute(
            "INSERT INTO audit_cuts (through_seq, through_mac, through_id, at, events, archive_sha256, mac) "
            "VALUES (?,?,?,?,?,?,?)",
            (cut.through_seq, cut.through_mac, cut.through_id, cut.at, cut.events, cut.archive_sha256, cut.mac),
        )
        conn.execute("DELETE FROM audit_events WHERE id > ? AND id <= ?", (after_id, through_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Archived(len(rows), through_seq)


def _write(out: Path, rows: list[tuple[Any, ...]], *, prev_mac: str, through_seq: int) -> str:
    names = [c.strip() for c in store.EVENT_COLUMNS.split(",")]
    lines = [json.dumps({"format": FORMAT, "prev_mac": prev_mac, "through_seq": through_seq})]
    lines += [json.dumps(dict(zip(names, r, strict=True)), separators=(",", ":")) for r in rows]
    data = ("\n".join(lines) + "\n").encode()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StorageError(f"cannot write the archive {out}: {exc}") from exc
    return hashlib.sha256(data).hexdigest()


def check_archive(path: Path, key: bytes, cut: Cut, prev_mac: str) -> list[str]:
    """Problems of one archive file against its cut (empty: it is the archived part of the chain)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [f"cannot read the archive {path}: {exc}"]
    found: list[str] = []
    if hashlib.sha256(data).hexdigest() != cut.archive_sha256:
        found.append(f"{path}: its SHA-256 is not the one recorded at the cut through seq {cut.through_seq}")
    try:
        header, *events = (json.loads(line) for line in data.decode().splitlines())
    except (ValueError, UnicodeDecodeError):
        return [*found, f"{path}: not an itsmd audit archive (not JSON lines)"]
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("prev_mac") != prev_mac:
        return [*found, f"{path}: not the archive that follows the previous cut (header {header!r})"]
    last: tuple[int, str] | None = None
    for e in events:
        if e.get("seq") is None:
            continue  # sealed before the chain started: the chain's first event holds their digest
        fields = (e["seq"], e["at"], e["actor"], e["record_type"], e["record_id"], e["action"], e["before"], e["after"])
        expected = (last[0] + 1) if last is not None else None
        if expected is not None and e["seq"] != expected:
            found.append(f"{path}: event seq {expected} is missing")
        if not hmac.compare_digest(event_mac(key, fields, last[1] if last else prev_mac), str(e.get("mac"))):
            found.append(f"{path}: event seq {e['seq']}: its mac does not match")
        last = (e["seq"], str(e.get("mac")))
    if last is None or last != (cut.through_seq, cut.through_mac):
        found.append(f"{path}: does not end at the cut (seq {cut.through_seq})")
    return found
