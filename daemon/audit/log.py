"""The audit log the stages write to: each event is chained (sequence number and mac) when it is recorded, so
the order of the batch the writer commits is the order of the chain.

Rows are only ever inserted, in the same transaction as the change they describe; the table refuses
UPDATE and DELETE (triggers), and nothing prunes it. The incident timeline is the readable story; this is
the record an auditor checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.audit.chain import KEY_BYTES, ORIGIN, Fields, Head, event_mac, write_anchor
from daemon.storage.audit import INSERT
from daemon.storage.database import Batch
from daemon.storage.writer import GroupCommitWriter

log = logging.getLogger(__name__)

SYSTEM = "itsmd"
"""The actor of changes the daemon makes by itself (alerts, timers)."""


def dump(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class AuditLog:
    """Without a key (stages built on their own, in tests) events are chained with a throwaway key: they
    cannot be verified later. The daemon builds it with daemon.audit.start.open_audit."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        *,
        key: bytes | None = None,
        head: Head = ORIGIN,
        anchor: Path | None = None,
    ) -> None:
        self._writer = writer
        self._key = key if key is not None else secrets.token_bytes(KEY_BYTES)
        self._head = head
        self._anchor = anchor
        self._anchored = head
        self._committed = head
        self._unconfirmed: deque[tuple[int, Head]] = deque()
        """(writer batch, head after it), oldest first, for batches not known to be committed yet."""
        self._pending: list[tuple[Any, ...]] = []
        self.recorded = 0
        self.problems: list[str] = []
        """What the check at start found wrong with the chain, the anchor or the triggers."""
        writer.add_collector(self._collect)

    @property
    def chain_ok(self) -> bool:
        return not self.problems

    def record(
        self,
        at: float,
        actor: str,
        record_type: str,
        record_id: int | str,
        action: str,
        *,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        """Record a change; only the fields that differ are kept in before/after (all of them on creation)."""
        if before is not None and after is not None:
            changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
            before = {k: before.get(k) for k in changed}
            after = {k: after.get(k) for k in changed}
        # The mac covers the values exactly as SQLite gives them back: a REAL and the stored JSON text.
        row: Fields = (
            self._head.seq + 1,
            float(at),
            str(actor),
            record_type,
            str(record_id),
            action,
            dump(before),
            dump(after),
        )
        mac = event_mac(self._key, row, self._head.mac)
        self._head = Head(row[0], mac)
        self._pending.append((*row, mac))
        self.recorded += 1
        batch = self._writer.changed()
        if self._unconfirmed and self._unconfirmed[-1][0] == batch:
            self._unconfirmed[-1] = (batch, self._head)
        else:
            self._unconfirmed.append((batch, self._head))

    @property
    def committed_head(self) -> Head:
        """The newest event known to be committed."""
        done = self._writer.committed_seq
        while self._unconfirmed and self._unconfirmed[0][0] <= done:
            self._committed = self._unconfirmed.popleft()[1]
        return self._committed

    async def anchor(self) -> None:
        """Write the committed head to the anchor file if it moved. Only committed heads: after a crash the
        anchor must never be ahead of what the database holds."""
        head = self.committed_head
        if self._anchor is None or head == self._anchored:
            return
        try:
            await asyncio.to_thread(write_anchor, self._anchor, head)
        except OSError as exc:
            log.error("cannot write the audit anchor %s (retrying with the next commit): %s", self._anchor, exc)
            return
        self._anchored = head

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for row in self._pending:
            batch.append(INSERT, row)
        self._pending.clear()
