"""Alerts on disk only (resolved long ago, left memory), read back when they come again: without a read of the
store for every new alert.

The alert table asks for every fingerprint of a request it does not hold, and almost all of those are new:
asking the store each time cost one read per request on the event loop (measured, 10 unknown fingerprints:
112 us on SQLite, 371 us on PostgreSQL). A Bloom filter of the fingerprints that may be stored answers "not
stored" for nearly all new alerts in memory; a hit (or a false positive, under 1 % while the filter is at
most its planned size) reads the store as before. Memory: 16 bits per stored alert, not the alert.

Correct because nothing is ever missing from it: it is built by a scan of the store after start-up (until
it is complete every unknown fingerprint reads the store), and from then on the only way an alert becomes
disk-only is to leave memory (`AlertTable.forget_resolved`), which adds it. An alert written during the scan
is in memory then, so a scan that misses it is harmless. Rows pruned by housekeeping stay in the filter
(only a false positive) until the next rebuild, which `maintain` starts once more were added than planned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from daemon.model import Alert
from daemon.storage.alerts import count_alerts, load_alerts, stored_fingerprints
from daemon.storage.sql import Backend

log = logging.getLogger(__name__)

_PROBES = 7
_BITS_PER_ENTRY = 16
"""With 7 probes: a false positive rate of about 0.05 % at the planned size, 1 % at twice it."""
_MIN_BITS_LOG2 = 20
_SCAN_PAGE = 10_000


class Fingerprints:
    """A Bloom filter of 16-hex-digit fingerprints (FNV-1a 64 output: their bits are hash bits already)."""

    def __init__(self, planned: int) -> None:
        bits = max(1 << _MIN_BITS_LOG2, _BITS_PER_ENTRY * max(planned, 1))
        self._log2 = (bits - 1).bit_length()
        self._mask = (1 << self._log2) - 1
        self._bits = bytearray(1 << (self._log2 - 3))
        self.planned = (1 << self._log2) // _BITS_PER_ENTRY
        self.added = 0

    def _positions(self, fingerprint: str) -> list[int] | None:
        try:
            h = int(fingerprint, 16)
        except ValueError:
            return None
        low, high = h & 0xFFFFFFFF, (h >> 32) | 1
        mask = self._mask
        return [(low + i * high) & mask for i in range(_PROBES)]

    def add(self, fingerprint: str) -> None:
        positions = self._positions(fingerprint)
        if positions is None:
            return  # not hex: `in` says "maybe" for it anyway
        bits = self._bits
        for p in positions:
            bits[p >> 3] |= 1 << (p & 7)
        self.added += 1

    def __contains__(self, fingerprint: object) -> bool:
        if not isinstance(fingerprint, str):
            return False
        positions = self._positions(fingerprint)
        if positions is None:
            return True
        bits = self._bits
        return all(bits[p >> 3] & (1 << (p & 7)) for p in positions)


class StoredAlerts:
    """`AlertTable`'s reader of disk-only alerts, with the filter in front once `build` has run."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._sql = backend.reader()
        self._filter: Fingerprints | None = None
        self._building: list[str] | None = None
        """Fingerprints that left memory while a scan runs: added to the new filter when it is done."""
        self.reads = 0
        """Store reads made (for tests and the benchmark's explanation)."""

    def close(self) -> None:
        self._sql.close()

    @property
    def ready(self) -> bool:
        return self._filter is not None

    def __call__(self, fingerprints: Sequence[str]) -> dict[str, Alert]:
        found = self._filter
        if found is not None:
            fingerprints = [fp for fp in fingerprints if fp in found]
            if not fingerprints:
                return {}
        self.reads += 1
        try:
            return load_alerts(self._sql, fingerprints)
        # The backend's errors: StorageError, or its driver's (sqlite3.Error, psycopg.Error), which share no base.
        except Exception as exc:
            log.warning("could not read %d stored alerts, starting them afresh: %s", len(fingerprints), exc)
            return {}

    def left_memory(self, fingerprints: Iterable[str]) -> None:
        """These alerts are on disk only from now on."""
        fingerprints = list(fingerprints)
        if self._filter is not None:
            for fp in fingerprints:
                self._filter.add(fp)
        if self._building is not None:
            self._building.extend(fingerprints)

    async def build(self) -> None:
        """Scan the store into a new filter and put it in front (again, if one was there)."""
        if self._building is not None:
            return
        self._building = []
        try:
            fresh = await asyncio.to_thread(self._scan)
        except Exception as exc:
            # Only slower without it: every unknown fingerprint reads the store, as before the filter.
            log.warning("could not scan the stored alerts' fingerprints, reading the store for new alerts: %s", exc)
            return
        finally:
            pending, self._building = self._building, None
        for fp in pending:
            fresh.add(fp)
        self._filter = fresh

    def maintain(self) -> bool:
        """Whether a rebuild is due: more were added than the filter was planned for."""
        return self._filter is not None and self._building is None and self._filter.added > self._filter.planned

    def _scan(self) -> Fingerprints:
        sql = self._backend.reader()
        try:
            fresh = Fingerprints(2 * count_alerts(sql))  # room to grow before the next rebuild
            for page in stored_fingerprints(sql, _SCAN_PAGE):
                for fp in page:
                    fresh.add(fp)
            return fresh
        finally:
            sql.close()
