"""`itsmd audit archive --before DATE --out FILE`: move old audit events to a file, the chain verifiable across.

Housekeeping never prunes the audit trail; this command is the one way it shrinks, and the one way past the
append-only triggers. It
  1. picks the cut: the newest chained event before DATE (never the head: the daemon links the next event to
     it), and with it every older row after the previous cut (events sealed before the chain included);
  2. writes those events to FILE as JSON lines (a header, then one event a line, oldest first) and syncs it;
  3. in one transaction through the backend, records the cut in audit_cuts (the last archived event's seq,
     mac and id, the number of events, the file's SHA-256, and a keyed mac over all of that: a cut row cannot
     be forged without the key) and deletes the archived rows (the delete trigger lets through only rows up to
     a recorded cut).
The events it read cannot change before that transaction (they are append-only and the daemon only adds
newer ones); another archive running at the same time can, so the cut is recorded only if no other cut was
recorded since it read (daemon/storage/audit_cuts.py), and the command reads the cuts back to see whether
its own is there. The file is written before the transaction: a failure leaves an extra file and nothing
deleted.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.audit.chain import event_mac
from daemon.errors import InvalidInput, StorageError
from daemon.storage import audit, audit_cuts
from daemon.storage.database import Batch
from daemon.storage.reading import DRIVER_ERRORS
from daemon.storage.sql import Backend, Row, Sql

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


def cuts(sql: Sql) -> list[Cut]:
    """Recorded cuts, oldest first (none on a store before SQLite schema version 10)."""
    return [Cut(*(r[name] for name in audit_cuts.CUT_COLUMNS)) for r in audit_cuts.cuts(sql)]


@dataclass(frozen=True, slots=True)
class Archived:
    events: int
    through_seq: int


def archive(backend: Backend, key: bytes, before: float, out: Path, *, now: float) -> Archived:
    """Archive the events before `before` to `out` (which must not exist) through an opened backend.
    InvalidInput when there is nothing to archive; StorageError when the file cannot be written or another
    archive recorded its cut first."""
    if out.exists():
        raise InvalidInput("archive_exists", f"{out} exists: archives are never overwritten")
    sql = backend.reader()
    try:
        done = cuts(sql)
        after_id = done[-1].through_id if done else 0
        prev_mac = done[-1].through_mac if done else ""
        head = audit.newest_chained(sql)
        r = audit_cuts.newest_before(sql, before, below_seq=head["seq"] if head is not None else 0, after_id=after_id)
        if r is None:
            raise InvalidInput("nothing_to_archive", "no chained event before that date (the newest is never archived)")
        through_id, through_seq, through_mac = r["id"], r["seq"], r["mac"]
        rows = audit_cuts.events_between(sql, after_id, through_id)
    finally:
        sql.close()
    digest = _write(out, rows, prev_mac=prev_mac, through_seq=through_seq)
    cut = Cut(through_seq, through_mac, through_id, now, len(rows), digest, "")
    cut = dataclasses.replace(cut, mac=cut_mac(key, cut))
    batch = Batch()
    batch.append(audit_cuts.RECORD_CUT, (*dataclasses.astuple(cut), after_id))
    batch.append(audit_cuts.DELETE_ARCHIVED, (after_id, through_id))
    try:
        backend.write(batch)
    except StorageError as exc:
        # Nothing of the batch was written; when the delete trigger refused, another archive cut first.
        raise StorageError(f"the cut was not recorded ({exc}): {out} is not part of the chain, delete it") from exc
    except DRIVER_ERRORS as exc:
        raise StorageError(f"the cut was not recorded ({exc}): {out} is not part of the chain, delete it") from exc
    sql = backend.reader()
    try:
        recorded = cut in cuts(sql)
    finally:
        sql.close()
    if not recorded:
        raise StorageError(f"another archive recorded a cut meanwhile: {out} is not part of the chain, delete it")
    return Archived(len(rows), through_seq)


def _write(out: Path, rows: list[Row], *, prev_mac: str, through_seq: int) -> str:
    names = [c.strip() for c in audit.EVENT_COLUMNS.split(",")]
    lines = [json.dumps({"format": FORMAT, "prev_mac": prev_mac, "through_seq": through_seq})]
    lines += [json.dumps({name: r[name] for name in names}, separators=(",", ":")) for r in rows]
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
