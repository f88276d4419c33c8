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
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from daemon.alerts.evidence import EndEvidence, last_seen
from daemon.alerts.expiry import ExpiryWheel
from daemon.alerts.transitions import Ended, Fired, Transition
from daemon.clock import Clock, SystemClock
from daemon.config import AlertsConfig
from daemon.model import Alert, AlertStatus, IncomingAlert, Source
from daemon.storage.alerts import alert_row, alert_touch_row
from daemon.storage.database import Batch
from daemon.storage.writer import GroupCommitWriter

# Timestamps from JSON round-trip through floats; closer than this is the same instant.
_SAME_INSTANT = 0.0005
_MAX_FOUND = 10_000
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


def _interned_names(values: Mapping[str, str]) -> dict[str, str]:
    # Annotation texts are mostly one of a kind (templated per alert: "disk full on host-0042"): interning
    # them saves nothing and gives each a slot in the interpreter's table of interned strings while held.
    # Holding 100k restored alerts took 8 MiB less and a third less time without it. Their names are shared.
    return {sys.intern(k): v for k, v in values.items()}


class AlertTable:
    def __init__(
        self,
        writer: GroupCommitWriter,
        settings: AlertsConfig,
        *,
        load_stored: Callable[[Sequence[str]], Mapping[str, Alert]],
        left_memory: Callable[[list[str]], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._writer = writer
        self._settings = settings
        self._load_stored = load_stored
        """Reads alerts that are on disk only (resolved long ago) by fingerprint: memory holds no list of them,
        so it does not grow with every alert ever seen."""
        self._left_memory = left_memory
        """Told of the alerts forget_resolved dropped (daemon.alerts.stored keeps its filter of them)."""
        self._alerts: dict[str, Alert] = {}
        self._firing: dict[str, Alert] = {}
        self._resting: dict[str, Alert] = {}
        """The alerts in memory that are not firing: what forget_resolved looks at, not every alert held."""
        self._wheel = ExpiryWheel()
        self._by_labels: dict[int, Alert] = {}
        """The alerts in memory by a hash of their label set (see fingerprint_of)."""
        self._found: dict[str, Alert] = {}
        """What fingerprint_of found since the last apply, so apply does not look the same alerts up again in
        `_alerts`: at 100k alerts each lookup there misses the CPU cache. Only alerts in `_alerts`: emptied
        by every apply and by forget_resolved, the only place that drops alerts from memory."""
        self._dirty: dict[str, Alert] = {}
        """Alerts whose whole row must be written."""
        self._touched_times: deque[float] = deque()
        self._touched_alerts: deque[Alert] = deque()
        """Alerts of which only last-seen data changed, and when that was first unwritten (`touched_at`), in
        that order, so the due ones are at the front. Whether an alert is in it is the alert's own
        `touched_at`: a re-send reads no table of its own for that (at 100k active alerts such a table, as
        large as the active set, missed the CPU cache on every re-send). An entry whose `touched_at` differs
        was written whole meanwhile and is skipped."""
        writer.add_collector(self._collect)

    # -- start-up -------------------------------------------------------------------------------------

    def restore(self, active: Sequence[Alert], now: float) -> None:
        for alert in active:
            self._hold(alert)
            if alert.status is AlertStatus.FIRING:
                # Last-seen times are flushed lazily: give every alert a full period after a start.
                alert.expires_at = max(alert.expires_at or 0.0, now + self._stale_after(alert.sources))
                self._firing[alert.fingerprint] = alert
                self._resting.pop(alert.fingerprint, None)
                self._wheel.add(alert)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, fingerprint: str) -> Alert | None:
        return self._alerts.get(fingerprint)

    def held(self, fingerprint: str) -> Alert | None:
        """get() for the ingest path (the webhook names its fingerprints): what it finds is remembered for the
        apply that follows, as fingerprint_of does, so apply does not look it up in `_alerts` again."""
        alert = self._alerts.get(fingerprint)
        if alert is not None:
            self._remember(alert)
        return alert

    def fingerprint_of(self, labels: Mapping[str, str]) -> str | None:
        """The fingerprint of an alert in memory with exactly these labels, or None (then compute it).

        Prometheus re-sends every firing alert without its fingerprint, and the FNV hash runs per byte in
        Python: a dict lookup on the label set's built-in hash is much cheaper, and it holds exactly the alerts
        in memory, where a bounded cache of computed fingerprints misses once the active set outgrows it."""
        alert = self._by_labels.get(_labels_hash(labels))
        if alert is not None and alert.labels == labels:
            self._remember(alert)
            return alert.fingerprint
        return None

    def _remember(self, alert: Alert) -> None:
        if len(self._found) >= _MAX_FOUND:
            self._found.clear()  # a request refused after parsing left its alerts here: only a cache
        self._found[alert.fingerprint] = alert

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
        found, alerts = self._found, self._alerts
        held = [found.get(i.fingerprint) or alerts.get(i.fingerprint) for i in batch]
        found.clear()
        if None in held:
            # One indexed read for the whole request: new alerts are unknown too and must not cost one each.
            for stored in self._load_stored(
                [i.fingerprint for i, a in zip(batch, held, strict=True) if a is None]
            ).values():
                self._hold(stored)
            held = [self._alerts.get(i.fingerprint) if a is None else a for i, a in zip(batch, held, strict=True)]
        # One expiry for the whole request where the sender gives none: one float object shared by its alerts,
        # not one each, which a later re-send would free again at a random place of a large heap.
        fallback = now + self._stale_after(source)
        for incoming, known in zip(batch, held, strict=True):
            # None: unknown when the request came, or created by an earlier alert of it
            alert = known or self._alerts.get(incoming.fingerprint)
            if alert is None:
                alert = self._create(incoming, source, now, out, fallback)
            else:
                self._update(alert, incoming, source, now, out=out, fallback=fallback)
            if alert.pending_seq > wait_for and alert.pending_seq > self._writer.committed_seq:
                wait_for = alert.pending_seq
        return out, wait_for

    def due(self, now: float) -> list[Alert]:
        """Firing alerts whose sender stopped refreshing them by `now` (found in the expiry wheel, without a
        look at every firing alert)."""
        return self._wheel.due(now, self._firing)

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
        self._found.clear()
        gone = [
            fp
            for fp, a in self._resting.items()
            if a.status is not AlertStatus.FIRING
            and (a.ends_at or a.last_seen) < cutoff
            and fp not in self._dirty
            and a.touched_at is None
        ]
        for fp in gone:
            alert = self._alerts.pop(fp)
            del self._resting[fp]
            key = _labels_hash(alert.labels)
            if self._by_labels.get(key) is alert:
                del self._by_labels[key]
        if gone and self._left_memory is not None:
            self._left_memory(gone)
        return len(gone)

    def set_incident(self, alert: Alert, incident_id: int) -> None:
        alert.incident_id = incident_id
        self._changed(alert)

    # -- internals ------------------------------------------------------------------------------------

    def _stale_after(self, sources: Source) -> float:
        if Source.ALERTMANAGER in sources:
            return self._settings.webhook_stale_after
        return self._settings.resolve_timeout

    @staticmethod
    def _expiry(incoming: IncomingAlert, source: Source, fallback: float) -> float:
        if source is Source.PROMETHEUS and incoming.ends_at is not None:
            return incoming.ends_at
        return fallback

    def _hold(self, alert: Alert) -> None:
        alert.labels = _interned(alert.labels)
        alert.annotations = _interned_names(alert.annotations)
        alert.generator_url = sys.intern(alert.generator_url)
        self._alerts[alert.fingerprint] = alert
        if alert.status is not AlertStatus.FIRING:
            self._resting[alert.fingerprint] = alert
        # A label set that hashes like another one's (64 bits: practically never) is left out: its fingerprint
        # is computed each time, which is only slower.
        self._by_labels.setdefault(_labels_hash(alert.labels), alert)

    def _create(
        self, incoming: IncomingAlert, source: Source, now: float, out: list[Transition], fallback: float
    ) -> Alert:
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
            alert.expires_at = self._expiry(incoming, source, fallback)
            self._firing[alert.fingerprint] = alert
            self._wheel.add(alert)
            out.append(Fired(alert))
        self._changed(alert)
        return alert

    def _update(
        self,
        alert: Alert,
        incoming: IncomingAlert,
        source: Source,
        now: float,
        *,
        out: list[Transition],
        fallback: float,
    ) -> None:
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
                self._fire(alert, incoming, source, fallback, out)
                durable = True
            elif same and alert.status is AlertStatus.FIRING:
                # Only later: the expiry wheel finds the alert at its old expiry and moves it on then.
                alert.expires_at = max(alert.expires_at or 0.0, self._expiry(incoming, source, fallback))
                alert.ends_at = None
            elif same and alert.status is AlertStatus.EXPIRED:
                # Our expiry was a guess and the sender proves the alert still fires.
                self._fire(alert, incoming, source, fallback, out, revived=True)
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
            alert.annotations = _interned_names(incoming.annotations)
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
        fallback: float,
        out: list[Transition],
        *,
        revived: bool = False,
    ) -> None:
        alert.status = AlertStatus.FIRING
        alert.starts_at = incoming.starts_at
        alert.ends_at = None
        alert.generator_url = sys.intern(incoming.generator_url)
        alert.expires_at = self._expiry(incoming, source, fallback)
        alert.state_changes += 1
        self._firing[alert.fingerprint] = alert
        self._resting.pop(alert.fingerprint, None)
        self._wheel.add(alert)
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
        self._wheel.forget(alert)
        self._resting[alert.fingerprint] = alert

    def _changed(self, alert: Alert) -> None:
        self._dirty[alert.fingerprint] = alert
        alert.pending_seq = self._writer.changed()

    def _touched(self, alert: Alert, now: float) -> None:
        if alert.touched_at is None:
            alert.touched_at = now
            self._touched_times.append(now)
            self._touched_alerts.append(alert)
            self._writer.touched()

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for fp, alert in self._dirty.items():
            batch.alerts[fp] = alert_row(alert)
            alert.touched_at = None  # the whole row carries the last-seen data too
        self._dirty.clear()
        if not lazy:
            return
        # At shutdown everything goes; otherwise what has waited SEEN_WRITE_DELAY (a clock set back only delays).
        cutoff = float("inf") if self._writer.closing else self._clock.now() - SEEN_WRITE_DELAY
        times, alerts = self._touched_times, self._touched_alerts
        while times and times[0] <= cutoff:
            since, alert = times.popleft(), alerts.popleft()
            if alert.touched_at is not None and alert.touched_at == since:
                alert.touched_at = None
                batch.alert_touches[alert.fingerprint] = alert_touch_row(alert)
        if times:
            self._writer.touched()  # keeps the periodic flush coming for the rest
