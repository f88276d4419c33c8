"""Checking the audit chain: every event's mac, the sequence numbers (contiguous, in the order the rows were
stored), the events sealed when the chain started, the anchor file and the append-only triggers.

What it finds: an edited event (its mac fails), a deleted one (a gap; the newest ones: the chain falls short
of the anchor), an inserted one (a second event of a sequence number, a row without a mac after the chain
started, or a mac that fails), two events swapped (macs fail, or sequence numbers out of the rows' order),
and dropped or replaced triggers. What it cannot find: events deleted from the tail after the anchor was last
written (the daemon writes it at most a second after a commit, and at start and stop), and anything done by
someone who holds the key file too.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.audit import archive, store
from daemon.audit.chain import ORIGIN, Head, event_mac, read_anchor
from daemon.errors import StorageError


@dataclass(frozen=True, slots=True)
class Finding:
    text: str
    seq: int | None = None
    id: int | None = None

    def __str__(self) -> str:
        if self.seq is not None:
            where = f"event seq {self.seq}" + (f" (id {self.id})" if self.id is not None else "")
        elif self.id is not None:
            where = f"event id {self.id}"
        else:
            return self.text
        return f"{where}: {self.text}"


@dataclass
class Report:
    events: int
    """Rows in audit_events, chained or sealed."""
    head: Head
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def check(
    conn: sqlite3.Connection,
    key: bytes,
    anchor_file: Path,
    *,
    tail: int | None = None,
    archives: Sequence[Path] = (),
) -> Report:
    """The whole chain, or its newest `tail` events (the sealed events are then not re-hashed). The stored
    chain starts after the newest archive cut; `archives` (the files `itsmd audit archive` wrote, oldest
    first) are checked against their cuts."""
    findings: list[Finding] = []
    anchor: Head | None = None
    anchor_read = True
    # The anchor first, the database after: the daemon writes the anchor only once a head is committed, so
    # the snapshot read next holds at least the anchored event even while the daemon writes.
    try:
        anchor = read_anchor(anchor_file)
    except StorageError as exc:
        findings.append(Finding(str(exc)))
        anchor_read = False
    conn.execute("BEGIN")
    try:
        report = _check(conn, key, tail, findings)
        _check_archives(conn, key, archives, findings)
        if report.head.seq > 0 and anchor is None and anchor_read:
            findings.append(Finding(f"no anchor file {anchor_file}: the newest events could be deleted unnoticed"))
        if anchor is not None:
            _check_anchor(conn, anchor, anchor_file, report)
    finally:
        conn.execute("COMMIT")
    return report


def _check(conn: sqlite3.Connection, key: bytes, tail: int | None, findings: list[Finding]) -> Report:
    events = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    report = Report(events, ORIGIN, findings)
    if "mac" not in {r[1] for r in conn.execute("PRAGMA table_info(audit_events)")}:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        findings.append(Finding(f"schema version {version} has no audit chain: start itsmd once to upgrade it"))
        return report
    _check_triggers(conn, findings)
    report.head = store.stored_head(conn) or ORIGIN
    if report.head.seq == 0:
        if events:
            findings.append(Finding(f"the chain has not started: none of the {events} events has a mac"))
        return report
    done = archive.cuts(conn)
    for cut in done:
        if not hmac.compare_digest(archive.cut_mac(key, cut), cut.mac):
            findings.append(Finding(f"the archive cut through seq {cut.through_seq} was forged or edited"))
    if done:
        # Seq 1 and the sealed events are in an archive file: checked with it (--archive).
        last = done[-1]
        through_id: int | None = last.through_id
        first, first_prev = last.through_seq + 1, last.through_mac
    else:
        through_id = _check_start(conn, full=tail is None, findings=findings)
        first, first_prev = 1, ""
    for (row_id,) in conn.execute(
        "SELECT id FROM audit_events WHERE seq IS NULL AND id > ? ORDER BY id", (through_id or 0,)
    ):
        findings.append(Finding("no sequence number or mac, written after the chain started: inserted", id=row_id))
    start = first if tail is None else max(first, report.head.seq - tail + 1)
    _check_links(conn, key, start, findings, first_prev if start == first else None)
    return report


def _check_archives(conn: sqlite3.Connection, key: bytes, archives: Sequence[Path], findings: list[Finding]) -> None:
    found = store.trigger_sql(conn, "audit_cuts")
    for name, sql in store.CUT_TRIGGERS.items():
        if found.get(name) != sql:
            findings.append(Finding(f"trigger {name} is missing or replaced: archive cuts could be changed"))
    if not archives:
        return
    done = archive.cuts(conn)
    if len(archives) != len(done):
        findings.append(
            Finding(f"{len(archives)} archive file(s) given for {len(done)} cut(s): give all, oldest first")
        )
        return
    prev = ""
    for path, cut in zip(archives, done, strict=True):
        findings.extend(Finding(text) for text in archive.check_archive(path, key, cut, prev))
        prev = cut.through_mac


def _check_triggers(conn: sqlite3.Connection, findings: list[Finding]) -> None:
    found = store.trigger_sql(conn)
    for name, sql in store.TRIGGERS.items():
        if name not in found:
            findings.append(Finding(f"trigger {name} is missing: the table no longer refuses changes"))
        elif found[name] != sql:
            findings.append(Finding(f"trigger {name} was replaced: {found[name]}"))


def _check_start(conn: sqlite3.Connection, *, full: bool, findings: list[Finding]) -> int | None:
    """The first event must start the chain; in a full check, the events it sealed must be unchanged.
    Returns the id of the newest sealed event (None: nothing was sealed)."""
    r = conn.execute("SELECT id, record_type, record_id, action, after FROM audit_events WHERE seq = 1").fetchone()
    if r is None:
        return None  # the gap at seq 1 is reported with the links
    if tuple(r[1:4]) != store.CHAIN_STARTED:
        findings.append(Finding("not the start of the chain: the first event was replaced", 1, r[0]))
        return None
    try:
        sealed = json.loads(r[4])
        count, through_id = sealed["unchained_events"], sealed["unchained_through_id"]
        digest = sealed["unchained_sha256"]
    except (TypeError, ValueError, KeyError):
        findings.append(Finding("the chain's start does not say what it sealed", 1, r[0]))
        return None
    if full and store.unchained_digest(conn, through_id) != (count, digest):
        findings.append(
            Finding(
                f"the {count} events written before the chain (ids up to {through_id}), sealed when it started, "
                "were changed, deleted or added to"
            )
        )
    return through_id if isinstance(through_id, int) else None


def _check_links(
    conn: sqlite3.Connection, key: bytes, start: int, findings: list[Finding], prev: str | None = None
) -> None:
    """`prev`: the mac before `start` when it is not stored (the archive cut's)."""
    prev_mac: str | None = ""
    if prev is not None:
        prev_mac = prev
    elif start > 1:
        r = conn.execute("SELECT mac FROM audit_events WHERE seq = ?", (start - 1,)).fetchone()
        prev_mac = r[0] if r is not None else None
    expected = start
    last: tuple[int, int] | None = None
    for row_id, seq, at, actor, record_type, record_id, action, before, after, mac in store.chained(conn, start):
        if not isinstance(seq, int):
            findings.append(Finding(f"sequence number {seq!r} is not a number: inserted or edited", id=row_id))
            continue
        if seq < expected:
            findings.append(Finding("a second event of this sequence number: inserted", seq, row_id))
            continue
        if seq > expected:
            gap = f"events {expected}..{seq - 1} are" if seq - 1 > expected else "the event is"
            findings.append(Finding(f"missing: {gap} deleted", expected))
            prev_mac = None  # the next mac cannot be checked without its predecessor's
        if last is not None and row_id < last[1]:
            findings.append(Finding(f"stored after event seq {seq} (id {row_id}): reordered", *last))
        if prev_mac is not None:
            try:
                want = event_mac(key, (seq, at, actor, record_type, record_id, action, before, after), prev_mac)
            except (TypeError, ValueError):
                want = ""
            if not isinstance(mac, str) or not hmac.compare_digest(want, mac):
                findings.append(Finding("its mac does not match: edited, or not written with this key", seq, row_id))
        prev_mac = mac if isinstance(mac, str) else ""
        expected = seq + 1
        last = (seq, row_id)


def _check_anchor(conn: sqlite3.Connection, anchor: Head, anchor_file: Path, report: Report) -> None:
    head = report.head
    if anchor.seq > head.seq:
        gap = f"events {head.seq + 1}..{anchor.seq} are" if anchor.seq > head.seq + 1 else "the event is"
        text = f"missing: {gap} deleted (the anchor {anchor_file} says the chain reached {anchor.seq})"
        report.findings.append(Finding(text, head.seq + 1))
        return
    r = conn.execute("SELECT id, mac FROM audit_events WHERE seq = ?", (anchor.seq,)).fetchone()
    if r is not None and r[1] != anchor.mac:
        report.findings.append(Finding(f"differs from the anchor {anchor_file}: replaced", anchor.seq, r[0]))
