"""Which firing alerts are due to expire, found without looking at every firing alert at each sweep.

A sweep every few seconds that scanned all firing alerts cost time in proportion to the active set (15-30 ms
at 100k alerts on a 2-core VM, twice per sweep with forgetting), and walking 100k records pushed the
re-sends' own records out of the CPU cache. The wheel keeps the fingerprints of firing alerts in buckets of
`BUCKET` seconds by expiry and is lazy: a re-send moves an alert's expiry later without touching the wheel;
only when its old bucket comes due is it moved to the bucket of its current expiry. So an alert costs the
wheel one step per expiry period, not one per re-send, and a sweep looks at the due buckets only.

An alert has at most one live entry, the bucket named by its `expiry_slot`. Entries left behind (its expiry
moved earlier, it ended, it left memory) are dropped when their bucket comes due; they hold a fingerprint,
not the record, so a record that left memory is not kept alive by them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping

from daemon.model import Alert

BUCKET = 1.0
"""Seconds of expiry per bucket: small enough that a due bucket holds few alerts not yet due."""


class ExpiryWheel:
    def __init__(self) -> None:
        self._buckets: dict[int, tuple[int, list[str]]] = {}
        """slot -> (the slot, shared by the alerts it holds as their expiry_slot; their fingerprints)."""
        self._slots: list[int] = []
        """The slots of the buckets, a heap: the next one to come due is first."""

    def __len__(self) -> int:
        """Entries held, live or left behind."""
        return sum(len(fps) for _, fps in self._buckets.values())

    def add(self, alert: Alert) -> None:
        """Call when a firing alert's expiry is set anew (it fired, or came back); moving later needs no call."""
        if alert.expires_at is None:
            return
        slot = math.floor(alert.expires_at / BUCKET)
        if alert.expiry_slot is not None and alert.expiry_slot <= slot:
            return  # an entry at or before its expiry exists: when it comes due, the alert moves on
        self._put(alert, slot)

    @staticmethod
    def forget(alert: Alert) -> None:
        """The alert stopped firing: its entry is left behind (dropped when its bucket comes due)."""
        alert.expiry_slot = None

    def due(self, now: float, firing: Mapping[str, Alert]) -> list[Alert]:
        """The alerts of `firing` whose expiry is at or before `now`, in expiry-bucket order. They stay in the
        wheel (a sweep may leave one alone) until they stop firing."""
        last = math.floor(now / BUCKET)
        out: list[Alert] = []
        chosen: set[int] = set()
        while self._slots and self._slots[0] < last:
            slot = heapq.heappop(self._slots)
            _, fps = self._buckets.pop(slot)
            for fp in fps:
                alert, expires_at = self._live(fp, slot, firing, chosen)
                if alert is None:
                    continue
                if expires_at <= now:
                    chosen.add(id(alert))
                    out.append(alert)
                else:
                    self._put(alert, math.floor(expires_at / BUCKET))
        earlier = len(out)
        current = self._buckets.get(last)
        if current is not None:
            # The bucket of `now` is due only in part: what it holds beyond `now` stays in it.
            kept: list[str] = []
            for fp in current[1]:
                alert, expires_at = self._live(fp, last, firing, chosen)
                if alert is None:
                    continue
                if expires_at <= now:
                    chosen.add(id(alert))
                    out.append(alert)
                    kept.append(fp)
                elif math.floor(expires_at / BUCKET) == last:
                    kept.append(fp)
                else:
                    self._put(alert, math.floor(expires_at / BUCKET))
            current[1][:] = kept
        for alert in out[:earlier]:  # still due: back in the wheel, where the next sweep finds them first
            self._put(alert, math.floor((alert.expires_at or now) / BUCKET))
        return out

    @staticmethod
    def _live(fp: str, slot: int, firing: Mapping[str, Alert], chosen: set[int]) -> tuple[Alert | None, float]:
        """The firing alert an entry of bucket `slot` stands for and its expiry; None when the entry was left
        behind."""
        alert = firing.get(fp)
        if alert is None or alert.expiry_slot != slot or id(alert) in chosen:
            return None, 0.0  # not firing, its live entry is elsewhere, or it was taken already
        if alert.expires_at is None:
            alert.expiry_slot = None
            return None, 0.0
        return alert, alert.expires_at

    def _put(self, alert: Alert, slot: int) -> None:
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = (slot, [])
            heapq.heappush(self._slots, slot)
        bucket[1].append(alert.fingerprint)
        alert.expiry_slot = bucket[0]  # one int object per bucket, not one per alert
