"""Opening the audit chain when the daemon starts: the key (made at the very first start), the chain's first
event, and a check of the chain's newest events, the anchor and the triggers.

A broken chain does not stop the daemon (that would let whoever broke it stop incident management too): it
logs each problem and exports itsmd_audit_chain_ok 0. A missing key file does stop it while the database
holds chained events: a new key would make every one of them fail to verify.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from daemon.audit.chain import (
    CHAIN_STARTED,
    Fields,
    Head,
    anchor_path,
    create_key,
    event_mac,
    load_key,
    read_anchor,
    write_anchor,
)
from daemon.audit.log import SYSTEM, AuditLog, dump
from daemon.audit.verify import check, stored_head, unchained_digest
from daemon.errors import StorageError
from daemon.storage import audit as store
from daemon.storage.database import Batch
from daemon.storage.sql import Backend
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

TAIL = 1000
"""Events checked at start; `itsmd audit verify` checks them all."""


@dataclass
class _Opened:
    key: bytes
    head: Head
    problems: list[str]


async def open_audit(db: Backend, writer: GroupCommitWriter, key_file: Path, now: float) -> AuditLog:
    """The daemon's audit log; call before the writer starts (this reads and writes on the writer's connection)."""
    opened = await asyncio.to_thread(_open, db, key_file, now)
    audit = AuditLog(writer, key=opened.key, head=opened.head, anchor=anchor_path(key_file))
    audit.problems = opened.problems
    return audit


def _open(db: Backend, key_file: Path, now: float) -> _Opened:
    sql = db.primary
    head = stored_head(sql)
    if key_file.exists():
        key = load_key(key_file)
    elif head is not None:
        raise StorageError(
            f"the audit key file {key_file} is missing, but the database holds audit events chained with a key "
            f"(up to seq {head.seq}): restore the file, or point audit.key_file at it"
        )
    else:
        key = create_key(key_file)
    anchor_file = anchor_path(key_file)
    problems: list[str] = []
    try:
        anchor = read_anchor(anchor_file)
    except StorageError as exc:
        problems.append(str(exc))
        anchor = None
    if head is None and anchor is None and not problems:
        head = _start_chain(db, key, now)
        write_anchor(anchor_file, head)
    report = check(sql, key, anchor_file, tail=TAIL)
    problems.extend(str(f) for f in report.findings if str(f) not in problems)
    start = report.head
    if anchor is not None and anchor.seq > start.seq:
        # New events continue after the anchor, so the deleted ones stay a gap that verify names, rather
        # than being replaced by new events of the same numbers.
        start = anchor
    elif not problems and start != anchor:
        write_anchor(anchor_file, start)
    for problem in problems:
        log.error("audit trail: %s", problem)
    if problems:
        log.error(
            "audit trail: %d problem(s) in its newest %d events, anchor or triggers: itsmd_audit_chain_ok is 0; "
            "`itsmd audit verify` checks the whole chain",
            len(problems),
            TAIL,
        )
    else:
        log.info("audit chain intact (its newest %d events checked), head seq %d", min(TAIL, start.seq), start.seq)
    return _Opened(key, start, problems)


def _start_chain(db: Backend, key: bytes, now: float) -> Head:
    """The chain's first event; it seals (count and SHA-256) the events written before the chain existed.
    Those were sealed now, not when they were written: what was done to them before cannot be told.
    Nothing else writes yet (the writer has not started); a second start racing this one fails on the unique
    sequence number rather than start a second chain."""
    sql = db.primary
    through_id = store.last_unchained_id(sql)
    count, digest = unchained_digest(sql, through_id)
    sealed = {"unchained_events": count, "unchained_through_id": through_id, "unchained_sha256": digest}
    row: Fields = (1, float(now), SYSTEM, *CHAIN_STARTED, None, dump(sealed))
    mac = event_mac(key, row, "")
    batch = Batch()
    batch.append(store.INSERT, (*row, mac))
    db.write(batch)
    log.info("audit chain started; it seals the %d events written before it", count)
    return Head(1, mac)
