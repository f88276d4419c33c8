"""The alert table: one in-memory record per fingerprint, and the only code that changes alerts.

Most traffic is re-sends of alerts that did not change (Alertmanager re-sends whole groups every
group_interval, Prometheus every alert each minute). Those are decided here in memory and cost no disk
write: only new alerts, new episodes, resolutions, expiries and new annotations are marked `changed`
(the request waits for their commit); last-seen times are marked `touched` (written on the next flush).
Losing a last-seen time in a crash only makes an alert look staler, which is why every alert gets a full
staleness period after a start before it can expire. An expired alert ends at the evidence of its end
(evidence.py), not at the instant it expired.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

from daemon.alerts.evidence import EndEvidence, last_seen
from daemon.alerts.transitions import Ended, Fired, Transition
from daemon.clock import Clock, SystemClock
from daemon.config import AlertsConfig
from daemon.model import Alert, AlertStatus, IncomingAlert, Source
from daemon.storage.alerts import alert_row, alert_touch_row
from daemon.storage.database import Batch
from daemon.storage.writer import GroupCommitWriter

# Timestamps from JSON round-trip through floats; closer than this is the same instant.
_SAME_INSTANT = 0.0005
SEEN_WRITE_DELAY = 30.0
"""A re-send's last-seen data (last_seen, times_seen, expires_at) reaches disk at most this long after it (plus
one flush interval). Writing it on the next flush cost one row update per re-send as soon as the active set
outgrew what is re-sent within a flush, twice the cost of the re-send itself; now an alert re-sent many times
in this delay costs one. A crash loses at most this much of it: the alert only looks staler (see the module
docstring)."""


def _labels_hash(labels: Mapping[str, str]) -> int:
    return hash(frozenset(labels.items()))


def _interned(values: Mapping[str, str]) -> dict[str, str]:
    # Held alerts share their names and most values (alertname, service, severity, ...): one copy of each
    # saves memory, and a re-send compared against them reads strings already in the CPU cache.
    return {sys.intern(k): sys.intern(v) for k, v in values.items()}


class AlertTable:
    def __init__(
        self,
        writer: GroupCommitWriter,
        settings: AlertsConfig,
        *,
        load_stored: Callable[[Sequence[str]], Mapping[str, Alert]],
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._writer = writer
        self._settings = settings
        self._load_stored = load_stored
        """Reads alerts that are on disk only (resolved long ago) by fingerprint: memory holds no list of them,
        so it does not grow with every alert ever seen."""
        self._alerts: dict[str, Alert] = {}
        self._firing: dict[str, Alert] = {}
        self._by_labels: dict[int, Alert] = {}
        """The alerts in memory by a hash of their label set (see fingerprint_of)."""
        self._dirty: dict[str, Alert] = {}
        """Alerts whose whole row must be written."""
        self._touched_alerts: dict[str, float] = {}
        """Alerts of which only last-seen data changed, with when that was first unwritten; in that order, so
        the due ones are at the front."""
        writer.add_collector(self._collect)

    # -- start-up -------------------------------------------------------------------------------------

    def restore(self, active: Sequence[Alert], now: float) -> None:
        for alert in active:
            self._hold(alert)
            if alert.status is AlertStatus.FIRING:
                # Last-seen times are flushed lazily: give every alert a full period after a start.
                alert.expires_at = max(alert.expires_at or 0.0, now + self._stale_after(alert.sources))
                self._firing[alert.fingerprint] = alert

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, fingerprint: str) -> Alert | None:
        return self._alerts.get(fingerprint)

    def fingerprint_of(self, labels: Mapping[str, str]) -> str | None:
        """The fingerprint of an alert in memory with exactly these labels, or None (then compute it).

        Prometheus re-sends every firing alert without its fingerprint, and the FNV hash runs per byte in
        Python: a dict lookup on the label set's built-in hash is much cheaper, and it holds exactly the alerts
        in memory, where a bounded cache of computed fingerprints misses once the active set outgrows it."""
        alert = self._by_labels.get(_labels_hash(labels))
        if alert is not None and alert.labels == labels:
            return alert.fingerprint
        return None

    @property
    def pending_changes(self) -> int:
        """Alerts changed since the last cut of a write batch."""
        return len(self._dirty)

    @property
    def firing_count(self) -> int:
        return len(self._firing)

    def firing(self) -> list[Alert]:
        """The firing alerts, for readers: a new list, so a later change of the table does not change it
        (the alerts themselves are the live records: read them, do not change them)."""
        return list(self._firing.values())

    def __len__(self) -> int:
        return len(self._alerts)

    # -- changes --------------------------------------------------------------------------------------

    def apply(self, batch: Sequence[IncomingAlert], source: Source, now: float) -> tuple[list[Transition], int]:
        """Apply one request's alerts; returns what changed and the batch to wait for (0: nothing new)."""
        out: list[Transition] = []
        wait_for = 0
        unknown = [i.fingerprint for i in batch if i.fingerprint not in self._alerts]
        if unknown:
            # One indexed read for the whole request: new alerts are unknown too and must not cost one each.
            for stored in self._load_stored(unknown).values():
                self._hold(stored)
        for incoming in batch:
            alert = self._alerts.get(incoming.fingerprint)
            if alert is None:
                alert = self._create(incoming, source, now, out)
            else:
                self._update(alert, incoming, source, now, out)
            if alert.pending_seq > wait_for and alert.pending_seq > self._writer.committed_seq:
                wait_for = alert.pending_seq
        return out, wait_for

    def due(self, now: float) -> list[Alert]:
        """Firing alerts whose sender stopped refreshing them by `now`."""
        return [a for a in self._firing.values() if a.expires_at is not None and a.expires_at <= now]

    def expire(
        self, now: float, ends: Mapping[str, EndEvidence] | None = None, *, episodes: Mapping[str, float] | None = None
    ) -> list[Transition]:
        """End every firing alert due by `now`, at the evidence of its end (default: when it was last seen),
        never at the expiry instant: that is only when we stopped waiting. `episodes` (fingerprint -> startsAt
        when the evidence was sought) skips an alert that fired a new episode meanwhile."""
        out: list[Transition] = []
        for alert in self.due(now):
            if episodes is not None and episodes.get(alert.fingerprint) != alert.starts_at:
                continue  # not asked about, or a new episode began while Prometheus was asked
            found = (ends or {}).get(alert.fingerprint) or last_seen(alert)
            # The sender said it fired at last_seen; an answer from before that or from the future is not evidence.
            at = min(max(found.at, alert.last_seen, alert.starts_at), now)
            self._end(alert, AlertStatus.EXPIRED, at, out, evidence=found)
            self._changed(alert)
        return out

    def forget_resolved(self, now: float) -> int:
        """Drop long-resolved alerts from memory; they stay on disk and come back if seen again."""
        cutoff = now - self._settings.resolved_retention
        gone = [
            fp
            for fp, a in self._alerts.items()
            if a.status is not AlertStatus.FIRING
            and (a.ends_at or a.last_seen) < cutoff
            and fp not in self._dirty
            and fp not in self._touched_alerts
        ]
        for fp in gone:
            alert = self._alerts.pop(fp)
            key = _labels_hash(alert.labels)
            if self._by_labels.get(key) is alert:
                del self._by_labels[key]
        return len(gone)

    def set_incident(self, alert: Alert, incident_id: int) -> None:
        alert.incident_id = incident_id
        self._changed(alert)

    # -- internals ------------------------------------------------------------------------------------

    def _stale_after(self, sources: Source) -> float:
        if Source.ALERTMANAGER in sources:
            return self._settings.webhook_stale_after
        return self._settings.resolve_timeout

    def _expiry(self, incoming: IncomingAlert, source: Source, now: float) -> float:
        if source is Source.PROMETHEUS and incoming.ends_at is not None:
            return incoming.ends_at
        return now + self._stale_after(source)

    def _hold(self, alert: Alert) -> None:
        alert.labels = _interned(alert.labels)
        alert.annotations = _interned(alert.annotations)
        alert.generator_url = sys.intern(alert.generator_url)
        self._alerts[alert.fingerprint] = alert
        # A label set that hashes like another one's (64 bits: practically never) is left out: its fingerprint
        # is computed each time, which is only slower.
        self._by_labels.setdefault(_labels_hash(alert.labels), alert)

    def _create(self, incoming: IncomingAlert, source: Source, now: float, out: list[Transition]) -> Alert:
        alert = Alert(
            fingerprint=incoming.fingerprint,
            labels=incoming.labels,
            annotations=incoming.annotations,
            status=AlertStatus.FIRING if incoming.firing else AlertStatus.RESOLVED,
            starts_at=incoming.starts_at,
            ends_at=None if incoming.firing else (incoming.ends_at or now),
            generator_url=incoming.generator_url,
            sources=source,
            first_seen=now,
            last_seen=now,
        )
        self._hold(alert)
        if incoming.firing:
            alert.expires_at = self._expiry(incoming, source, now)
            self._firing[alert.fingerprint] = alert
            out.append(Fired(alert))
        self._changed(alert)
        return alert

    def _update(self, alert: Alert, incoming: IncomingAlert, source: Source, now: float, out: list[Transition]) -> None:
        alert.last_seen = now
        alert.times_seen += 1
        durable = False
        if source not in alert.sources:
            alert.sources |= source
            durable = True
        newer = incoming.starts_at > alert.starts_at + _SAME_INSTANT
        same = not newer and incoming.starts_at >= alert.starts_at - _SAME_INSTANT
        if incoming.firing:
            if newer:
                if alert.status is AlertStatus.FIRING:
                    self._end(alert, AlertStatus.RESOLVED, incoming.starts_at, out)
                self._fire(alert, incoming, source, now, out)
                durable = True
            elif same and alert.status is AlertStatus.FIRING:
                alert.expires_at = max(alert.expires_at or 0.0, self._expiry(incoming, source, now))
                alert.ends_at = None
            elif same and alert.status is AlertStatus.EXPIRED:
                # Our expiry was a guess and the sender proves the alert still fires.
                self._fire(alert, incoming, source, now, out, revived=True)
                durable = True
            # Otherwise a late re-send of an episode that already ended: nothing to change.
        else:
            if alert.status is AlertStatus.FIRING and (same or newer):
                # A resolve of a newer episode means the one we hold ended when that one began.
                self._end(alert, AlertStatus.RESOLVED, (incoming.ends_at or now) if same else incoming.starts_at, out)
                durable = True
            if newer or (same and alert.status is AlertStatus.EXPIRED):
                # An episode that began and ended unseen, or a real resolve after our expiry guess.
                alert.status = AlertStatus.RESOLVED
                alert.starts_at = incoming.starts_at
                alert.ends_at = incoming.ends_at or now
                durable = True
        if (same or newer) and incoming.annotations != alert.annotations:
            alert.annotations = _interned(incoming.annotations)
            durable = True
        if durable:
            self._changed(alert)
        else:
            self._touched(alert, now)

    def _fire(
        self,
        alert: Alert,
        incoming: IncomingAlert,
        source: Source,
        now: float,
        out: list[Transition],
        *,
        revived: bool = False,
    ) -> None:
        alert.status = AlertStatus.FIRING
        alert.starts_at = incoming.starts_at
        alert.ends_at = None
        alert.generator_url = sys.intern(incoming.generator_url)
        alert.expires_at = self._expiry(incoming, source, now)
        alert.state_changes += 1
        self._firing[alert.fingerprint] = alert
        out.append(Fired(alert, revived=revived))

    def _end(
        self,
        alert: Alert,
        status: AlertStatus,
        at: float,
        out: list[Transition],
        *,
        evidence: EndEvidence | None = None,
    ) -> None:
        out.append(
            Ended(
                alert,
                alert.incident_id,
                alert.starts_at,
                at,
                expired=status is AlertStatus.EXPIRED,
                end_source=evidence.source if evidence is not None else None,
                end_note=evidence.note if evidence is not None else None,
            )
        )
        alert.status = status
        alert.ends_at = at
        alert.expires_at = None
        alert.state_changes += 1
        self._firing.pop(alert.fingerprint, None)

    def _changed(self, alert: Alert) -> None:
        self._dirty[alert.fingerprint] = alert
        alert.pending_seq = self._writer.changed()

    def _touched(self, alert: Alert, now: float) -> None:
        if alert.fingerprint not in self._touched_alerts:
            self._touched_alerts[alert.fingerprint] = now
            self._writer.touched()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for fp, alert in self._dirty.items():
            batch.alerts[fp] = alert_row(alert)
            self._touched_alerts.pop(fp, None)  # the whole row carries the last-seen data too
        self._dirty.clear()
        if not lazy:
            return
        # At shutdown everything goes; otherwise what has waited SEEN_WRITE_DELAY (a clock set back only delays).
        cutoff = float("inf") if self._writer.closing else self._clock.now() - SEEN_WRITE_DELAY
        due = []
        for fp, since in self._touched_alerts.items():
            if since > cutoff:
                break
            due.append(fp)
        for fp in due:
            del self._touched_alerts[fp]
            batch.alert_touches[fp] = alert_touch_row(self._alerts[fp])
        if self._touched_alerts:
            self._writer.touched()  # keeps the periodic flush coming for the rest
