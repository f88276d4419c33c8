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

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.audit import archive
from daemon.audit.chain import CHAIN_STARTED, ORIGIN, Head, event_mac, read_anchor
from daemon.errors import StorageError
from daemon.storage import audit as store
from daemon.storage import audit_cuts
from daemon.storage.sql import Sql


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


def stored_head(sql: Sql) -> Head | None:
    """The chained event of the highest sequence number, or None before the chain started."""
    r = store.newest_chained(sql)
    return None if r is None else Head(r["seq"], r["mac"] or "")


def unchained_digest(sql: Sql, through_id: int | None) -> tuple[int, str]:
    """Count and SHA-256 of the events without a mac (written before the chain) up to id `through_id`."""
    digest = hashlib.sha256()
    count = 0
    if through_id is not None:
        for r in store.unchained(sql, through_id):
            fields = [r[name] for name in store.UNCHAINED_COLUMNS]
            digest.update(json.dumps(fields, separators=(",", ":")).encode() + b"\n")
            count += 1
    return count, digest.hexdigest()


def check(sql: Sql, key: bytes, anchor_file: Path, *, tail: int | None = None, archives: Sequence[Path] = ()) -> Report:
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
    with store.snapshot(sql):
        report = _check(sql, key, tail, findings)
        _check_archives(sql, key, archives, findings)
        if report.head.seq > 0 and anchor is None and anchor_read:
            findings.append(Finding(f"no anchor file {anchor_file}: the newest events could be deleted unnoticed"))
        if anchor is not None:
            _check_anchor(sql, anchor, anchor_file, report)
    return report


def _check(sql: Sql, key: bytes, tail: int | None, findings: list[Finding]) -> Report:
    events = store.event_count(sql)
    report = Report(events, ORIGIN, findings)
    if not store.has_chain(sql):
        version = store.schema_version(sql)
        findings.append(Finding(f"schema version {version} has no audit chain: start itsmd once to upgrade it"))
        return report
    _check_triggers(sql, findings)
    report.head = stored_head(sql) or ORIGIN
    if report.head.seq == 0:
        if events:
            findings.append(Finding(f"the chain has not started: none of the {events} events has a mac"))
        return report
    done = archive.cuts(sql)
    for cut in done:
        if not hmac.compare_digest(archive.cut_mac(key, cut), cut.mac):
            findings.append(Finding(f"the archive cut through seq {cut.through_seq} was forged or edited"))
    if done:
        # Seq 1 and the sealed events are in an archive file: checked with it (--archive).
        last = done[-1]
        through_id: int | None = last.through_id
        first, first_prev = last.through_seq + 1, last.through_mac
    else:
        through_id = _check_start(sql, full=tail is None, findings=findings)
        first, first_prev = 1, ""
    for row_id in store.unchained_ids_after(sql, through_id or 0):
        findings.append(Finding("no sequence number or mac, written after the chain started: inserted", id=row_id))
    start = first if tail is None else max(first, report.head.seq - tail + 1)
    _check_links(sql, key, start, findings, first_prev if start == first else None)
    return report


def _check_archives(sql: Sql, key: bytes, archives: Sequence[Path], findings: list[Finding]) -> None:
    found = store.trigger_sql(sql, "audit_cuts")
    for name, create in audit_cuts.expected_cut_triggers(sql.dialect).items():
        if found.get(name) != create:
            findings.append(Finding(f"trigger {name} is missing or replaced: archive cuts could be changed"))
    if not archives:
        return
    done = archive.cuts(sql)
    if len(archives) != len(done):
        findings.append(
            Finding(f"{len(archives)} archive file(s) given for {len(done)} cut(s): give all, oldest first")
        )
        return
    prev = ""
    for path, cut in zip(archives, done, strict=True):
        findings.extend(Finding(text) for text in archive.check_archive(path, key, cut, prev))
        prev = cut.through_mac


def _check_triggers(sql: Sql, findings: list[Finding]) -> None:
    found = store.trigger_sql(sql)
    for name, create in store.expected_triggers(sql.dialect).items():
        if name not in found:
            findings.append(Finding(f"trigger {name} is missing: the table no longer refuses changes"))
        elif found[name] != create:
            findings.append(Finding(f"trigger {name} was replaced: {found[name]}"))


def _check_start(sql: Sql, *, full: bool, findings: list[Finding]) -> int | None:
    """The first event must start the chain; in a full check, the events it sealed must be unchanged.
    Returns the id of the newest sealed event (None: nothing was sealed)."""
    r = store.chain_start(sql)
    if r is None:
        return None  # the gap at seq 1 is reported with the links
    if (r["record_type"], r["record_id"], r["action"]) != CHAIN_STARTED:
        findings.append(Finding("not the start of the chain: the first event was replaced", 1, r["id"]))
        return None
    try:
        sealed = json.loads(r["after"])
        count, through_id = sealed["unchained_events"], sealed["unchained_through_id"]
        digest = sealed["unchained_sha256"]
    except (TypeError, ValueError, KeyError):
        findings.append(Finding("the chain's start does not say what it sealed", 1, r["id"]))
        return None
    if full and unchained_digest(sql, through_id) != (count, digest):
        findings.append(
            Finding(
                f"the {count} events written before the chain (ids up to {through_id}), sealed when it started, "
                "were changed, deleted or added to"
            )
        )
    return through_id if isinstance(through_id, int) else None


def _check_links(sql: Sql, key: bytes, start: int, findings: list[Finding], prev: str | None = None) -> None:
    """`prev`: the mac before `start` when it is not stored (the archive cut's)."""
    prev_mac: str | None = ""
    if prev is not None:
        prev_mac = prev
    elif start > 1:
        r = store.event_of_seq(sql, start - 1)
        prev_mac = r["mac"] if r is not None else None
    expected = start
    last: tuple[int, int] | None = None
    for e in store.chained(sql, start):
        row_id, seq, mac = e["id"], e["seq"], e["mac"]
        at, actor, record_type, record_id, action = e["at"], e["actor"], e["record_type"], e["record_id"], e["action"]
        before, after = e["before"], e["after"]
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


def _check_anchor(sql: Sql, anchor: Head, anchor_file: Path, report: Report) -> None:
    head = report.head
    if anchor.seq > head.seq:
        gap = f"events {head.seq + 1}..{anchor.seq} are" if anchor.seq > head.seq + 1 else "the event is"
        text = f"missing: {gap} deleted (the anchor {anchor_file} says the chain reached {anchor.seq})"
        report.findings.append(Finding(text, head.seq + 1))
        return
    r = store.event_of_seq(sql, anchor.seq)
    if r is not None and r["mac"] != anchor.mac:
        report.findings.append(Finding(f"differs from the anchor {anchor_file}: replaced", anchor.seq, r["id"]))
