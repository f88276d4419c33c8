"""itsmd's firing alerts in the shapes of Alertmanager's v2 API (gettableAlert, alertGroup, receiver).

What a client sees is what Alertmanager 0.25 would show for the same alerts: labels, annotations, fingerprint,
startsAt and generatorURL as received, endsAt the time itsmd will expire the alert unless it hears of it
again (for Prometheus' posts: the endsAt Prometheus sent, as in Alertmanager). itsmd adds its own facts in
ways the schema allows:

* annotations `itsmd_incident` (the incident id) and `itsmd_priority` (its priority), on alerts attached to
  an incident; they replace sender annotations of the same names, which are itsmd's namespace;
* receivers: `itsmd` on every alert, `itsmd/service/<service>` for its catalogue service, and
  `itsmd/incident/<id>` for its incident; an alert group's receiver is the incident's.

itsmd neither silences nor inhibits: `silencedBy` and `inhibitedBy` are empty, the state is `active` for an
alert attached to an incident and `unprocessed` for one that is not (yet).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon.correlate.matchers import Matcher, match_all
from daemon.model import Alert, Incident

Json = dict[str, Any]
RECEIVER = "itsmd"
INCIDENT_ANNOTATION = "itsmd_incident"
PRIORITY_ANNOTATION = "itsmd_priority"
_KEY_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)=("(?:[^"\\]|\\.)*")')


def service_receiver(service: str) -> str:
    return f"{RECEIVER}/service/{service}"


def incident_receiver(incident_id: int) -> str:
    return f"{RECEIVER}/incident/{incident_id}"


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager prints times.

    Alertmanager truncates to the millisecond. A float holds a current epoch time only to about 0.2 µs, so
    it is rounded to the microsecond first: a time stored a hair under a millisecond does not print one
    millisecond early.
    """
    micros = round(seconds * 1_000_000)
    whole, rest = divmod(micros, 1_000_000)
    at = datetime.fromtimestamp(whole, UTC)
    # Not strftime("%Y"): glibc does not pad years below 1000 to four digits, and RFC 3339 needs them.
    return f"{at.year:04d}-{at:%m-%dT%H:%M:%S}.{rest // 1000:03d}Z"


def group_labels(incident: Incident) -> dict[str, str]:
    """The labels an incident groups by, read back from its key (`rule:{name="value",...}`).

    The key is what the incident was opened with, so this stays true after the rules change. Labels an alert
    did not have are in the key as ""; like Alertmanager, a group does not show them.
    """
    _, _, pairs = incident.key.partition("{")
    out: dict[str, str] = {}
    for name, quoted in _KEY_PAIR.findall(pairs):
        value = json.loads(quoted)
        if isinstance(value, str) and value:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """The query of GET /api/v2/alerts[/groups], with Alertmanager's meaning of each flag."""

    active: bool = True
    silenced: bool = True
    inhibited: bool = True
    unprocessed: bool = True
    matchers: tuple[Matcher, ...] = ()
    receiver: re.Pattern[str] | None = None

    def state_shown(self, state: str) -> bool:
        # Nothing is silenced or inhibited in itsmd, so `silenced` and `inhibited` never hide an alert.
        return self.active if state == "active" else self.unprocessed

    def receiver_shown(self, names: Iterable[str]) -> bool:
        return self.receiver is None or any(self.receiver.fullmatch(n) for n in names)


class AlertView:
    """Builds the v2 shapes from the alert table's firing alerts and the correlator's incidents."""

    def __init__(
        self,
        firing: Sequence[Alert],
        incident: Callable[[int], Incident | None],
        service_of: Callable[[dict[str, str]], str],
        now: float,
    ) -> None:
        # Alertmanager lists an alert until its endsAt passes; the sweep may not have expired it yet.
        self._alerts = sorted(
            (a for a in firing if a.expires_at is None or a.expires_at > now), key=lambda a: a.fingerprint
        )
        self._incident = incident
        self._service_of = service_of

    def incident_of(self, alert: Alert) -> Incident | None:
        if alert.incident_id is None:
            return None
        incident = self._incident(alert.incident_id)
        return incident if incident is not None and alert.fingerprint in incident.fingerprints else None

    def service(self, alert: Alert, incident: Incident | None) -> str:
        return incident.service if incident is not None else self._service_of(alert.labels)

    def gettable(self, alert: Alert) -> Json:
        incident = self.incident_of(alert)
        annotations = dict(alert.annotations)
        receivers = [RECEIVER, service_receiver(self.service(alert, incident))]
        if incident is not None:
            annotations[INCIDENT_ANNOTATION] = str(incident.id)
            annotations[PRIORITY_ANNOTATION] = incident.priority
            receivers.append(incident_receiver(incident.id))
        ends_at = alert.expires_at if alert.expires_at is not None and math.isfinite(alert.expires_at) else None
        return {
            "annotations": annotations,
            "endsAt": timestamp(ends_at if ends_at is not None else alert.last_seen),
            "fingerprint": alert.fingerprint,
            "receivers": [{"name": name} for name in receivers],
            "startsAt": timestamp(alert.starts_at),
            "status": {
                "inhibitedBy": [],
                "silencedBy": [],
                "state": "active" if incident is not None else "unprocessed",
            },
            "updatedAt": timestamp(alert.last_seen),
            "generatorURL": alert.generator_url,
            "labels": dict(alert.labels),
        }

    def alerts(self, query: AlertFilter) -> list[Json]:
        return [shape for alert in self._alerts if (shape := self._shown(alert, query)) is not None]

    def groups(self, query: AlertFilter) -> list[Json]:
        """One group per incident with firing alerts, by incident id; empty groups are left out, as in
        Alertmanager. An alert not attached to an incident is in no group."""
        members: dict[int, tuple[Incident, list[Json]]] = {}
        for alert in self._alerts:
            incident = self.incident_of(alert)
            if incident is None:
                continue
            if query.receiver is not None and not query.receiver.fullmatch(incident_receiver(incident.id)):
                continue
            shape = self._shown(alert, AlertFilter(query.active, query.silenced, query.inhibited, True, query.matchers))
            if shape is not None:
                members.setdefault(incident.id, (incident, []))[1].append(shape)
        return [
            {"alerts": shapes, "labels": group_labels(incident), "receiver": {"name": incident_receiver(incident.id)}}
            for _, (incident, shapes) in sorted(members.items())
        ]

    def receivers(self, services: Iterable[str]) -> list[Json]:
        """Every receiver an alert can carry now: itsmd, each service's, each incident's with firing alerts."""
        names = [RECEIVER, *(service_receiver(s) for s in services)]
        incidents: set[int] = set()
        for alert in self._alerts:
            incident = self.incident_of(alert)
            name = service_receiver(self.service(alert, incident))
            if name not in names:
                names.append(name)
            if incident is not None:
                incidents.add(incident.id)
        names.extend(incident_receiver(i) for i in sorted(incidents))
        return [{"name": name} for name in names]

    def _shown(self, alert: Alert, query: AlertFilter) -> Json | None:
        if not match_all(query.matchers, alert.labels):
            return None
        shape = self.gettable(alert)
        if not query.state_shown(shape["status"]["state"]):
            return None
        if not query.receiver_shown(r["name"] for r in shape["receivers"]):
            return None
        return shape
