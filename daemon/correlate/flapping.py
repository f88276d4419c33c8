"""Flap detection with hysteresis: per alert, the state changes (fired, ended) within a sliding window.

An alert starts flapping when `enter` changes lie within the window, and stops when no more than `leave`
remain: the gap between the two thresholds keeps an alert near the limit from toggling its mark.
"""

from __future__ import annotations

from daemon.correlate.rules import Flapping


class FlapTracker:
    def __init__(self) -> None:
        # Lists, not deques: a deque takes a 64-slot block (~600 bytes) even for one change, and every alert that
        # fired within the window has an entry here.
        self._changes: dict[str, list[float]] = {}
        self._settings: dict[str, Flapping] = {}
        self._flapping: set[str] = set()

    def __len__(self) -> int:
        """Alerts flapping now."""
        return len(self._flapping)

    def is_flapping(self, fingerprint: str) -> bool:
        return fingerprint in self._flapping

    def record(self, fingerprint: str, now: float, settings: Flapping) -> bool:
        """Count one state change; True when the alert starts flapping with it."""
        if not settings.enabled:
            return False
        changes = self._changes.setdefault(fingerprint, [])
        changes.append(now)
        del changes[: -(settings.enter + 1)]  # the last enter + 1 are all it needs (also after a reload)
        self._settings[fingerprint] = settings
        self._trim(fingerprint, now)
        if fingerprint not in self._flapping and len(changes) >= settings.enter:
            self._flapping.add(fingerprint)
            return True
        return False

    def rearm(self, fingerprint: str, now: float, settings: Flapping) -> None:
        """Mark an alert flapping that was stored as flapping, whose changes were not stored (a restart).

        As if `leave + 1` changes happened `now`: it stops once a whole window passes with no more than `leave`
        new changes, and changes from now on count as they would have before the restart.
        """
        if fingerprint in self._flapping:
            return
        self._changes[fingerprint] = [now] * (settings.leave + 1)
        self._settings[fingerprint] = settings
        self._flapping.add(fingerprint)

    def settle(self, now: float) -> list[str]:
        """Alerts that stop flapping by `now` (and forget alerts that went quiet)."""
        stopped = []
        for fingerprint in list(self._changes):
            remaining = self._trim(fingerprint, now)
            settings = self._settings[fingerprint]
            if fingerprint in self._flapping and remaining <= settings.leave:
                self._flapping.discard(fingerprint)
                stopped.append(fingerprint)
            if not remaining and fingerprint not in self._flapping:
                del self._changes[fingerprint]
                del self._settings[fingerprint]
        return stopped

    def next_change(self) -> float | None:
        """When the earliest flapping alert will have few enough changes left to stop (a scan of them all: for
        the scheduler's wake-ups, not for every change)."""
        due: float | None = None
        for fingerprint in self._flapping:
            at = self.stops_at(fingerprint)
            if at is not None:
                due = at if due is None else min(due, at)
        return due

    def stops_at(self, fingerprint: str) -> float | None:
        """When this alert will have few enough changes left to stop flapping (None: it does not flap)."""
        if fingerprint not in self._flapping:
            return None
        changes, settings = self._changes[fingerprint], self._settings[fingerprint]
        if len(changes) <= settings.leave:
            return 0.0
        # Stops once the change at index len - 1 - leave has left the window.
        return changes[len(changes) - 1 - settings.leave] + settings.window

    def _trim(self, fingerprint: str, now: float) -> int:
        changes = self._changes[fingerprint]
        window = self._settings[fingerprint].window
        gone = 0
        while gone < len(changes) and changes[gone] <= now - window:
            gone += 1
        del changes[:gone]
        return len(changes)
