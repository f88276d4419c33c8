"""SLA clocks of an incident: when it must be responded to and resolved by, and whether it is late.

SLA time runs while the incident is active (open or acknowledged) and its status is not a pause status,
and stops inside the service's maintenance windows. The response clock ends at acknowledgement, the
resolution clock at resolution. Deadlines are recomputed whenever the clock starts or stops.

A target is "at risk" once a share of it is used (`notify.publish.sla_at_risk`, per priority): its at-risk
instant is the deadline of that share of the target, under the same maintenance and pause rules, so it moves
with the deadline whenever the clock starts or stops.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.catalogue.services import Target
from daemon.catalogue.windows import MaintenanceWindow, counted, deadline, in_maintenance
from daemon.model import Incident, IncidentStatus, SlaClock

RESPOND, RESOLVE = "respond", "resolve"
TARGETS = (RESPOND, RESOLVE)


def set_targets(sla: SlaClock, targets: Target) -> None:
    sla.respond_target = targets.respond
    sla.resolve_target = targets.resolve


def running(incident: Incident, pause_statuses: Sequence[str]) -> bool:
    return incident.status.active and incident.status.value not in pause_statuses


def paused_by(incident: Incident, now: float, windows: Sequence[MaintenanceWindow], pause: Sequence[str]) -> str | None:
    """Why the clock of an active incident stands still now: its status is a pause status ("status"), or a
    maintenance window of its service is on ("maintenance"); None while it runs (or the incident is over)."""
    if not incident.status.active:
        return None
    if not running(incident, pause):
        return "status"
    return "maintenance" if in_maintenance(windows, now) else None


def update(
    incident: Incident,
    now: float,
    windows: Sequence[MaintenanceWindow],
    pause: Sequence[str],
    *,
    share: float | None,
) -> None:
    """Start or stop the clock to match the incident's status, and recompute its deadlines (and at-risk
    instants at `share` of each target; None: none)."""
    sla = incident.sla
    if running(incident, pause):
        if sla.since is None:
            sla.since = now
    elif sla.since is not None:
        sla.counted += counted(windows, sla.since, now)
        sla.since = None
    recompute(incident, windows, share=share)


def recompute(incident: Incident, windows: Sequence[MaintenanceWindow], *, share: float | None) -> None:
    _recompute_deadlines(incident, windows)
    recompute_risk(incident, windows, share)


def _recompute_deadlines(incident: Incident, windows: Sequence[MaintenanceWindow]) -> None:
    sla = incident.sla
    if sla.since is None:
        if incident.status.active:  # paused: no deadline while the clock stands still
            sla.resolve_by = None
            if incident.acknowledged_at is None:
                sla.respond_by = None
        return
    if incident.status is IncidentStatus.OPEN and incident.acknowledged_at is None:
        sla.respond_by = _due(windows, sla, sla.respond_target)
    sla.resolve_by = _due(windows, sla, sla.resolve_target)


def recompute_risk(incident: Incident, windows: Sequence[MaintenanceWindow], share: float | None) -> None:
    """The at-risk instants: when `share` of each target that still runs will be used (None while paused)."""
    sla = incident.sla
    sla.respond_risk_by = sla.resolve_risk_by = None
    if share is None or sla.since is None:
        return
    if incident.status is IncidentStatus.OPEN and incident.acknowledged_at is None and sla.respond_target:
        sla.respond_risk_by = _due(windows, sla, share * sla.respond_target)
    if sla.resolve_target:
        sla.resolve_risk_by = _due(windows, sla, share * sla.resolve_target)


def _due(windows: Sequence[MaintenanceWindow], sla: SlaClock, target: float | None) -> float | None:
    if target is None or sla.since is None:
        return None
    return deadline(windows, sla.since, max(0.0, target - sla.counted))


def breaches_due(incident: Incident, now: float) -> list[str]:
    """Targets this incident has missed by `now` and not yet been recorded as missing."""
    sla = incident.sla
    out = []
    if (
        incident.status is IncidentStatus.OPEN
        and incident.acknowledged_at is None
        and sla.respond_by is not None
        and now >= sla.respond_by
        and RESPOND not in sla.breaches
    ):
        out.append(RESPOND)
    if incident.status.active and sla.resolve_by is not None and now >= sla.resolve_by and RESOLVE not in sla.breaches:
        out.append(RESOLVE)
    return out


def at_risk_due(incident: Incident, now: float) -> list[str]:
    """Targets whose at-risk instant passed by `now`, not yet recorded as at risk, and not missed either."""
    return [t for t, at in _risks(incident) if at is not None and now >= at]


def risk_by(sla: SlaClock, target: str) -> float | None:
    return sla.respond_risk_by if target == RESPOND else sla.resolve_risk_by


def deadline_of(sla: SlaClock, target: str) -> float | None:
    return sla.respond_by if target == RESPOND else sla.resolve_by


def _risks(incident: Incident) -> list[tuple[str, float | None]]:
    sla = incident.sla
    out: list[tuple[str, float | None]] = []
    if incident.status is IncidentStatus.OPEN and incident.acknowledged_at is None:
        out.append((RESPOND, sla.respond_risk_by))
    if incident.status.active:
        out.append((RESOLVE, sla.resolve_risk_by))
    return [(t, at) for t, at in out if t not in sla.at_risk and t not in sla.breaches]


def next_deadline(incident: Incident) -> float | None:
    """The earliest deadline or at-risk instant still to be recorded."""
    sla = incident.sla
    due = [at for _, at in _risks(incident)]
    if incident.status is IncidentStatus.OPEN and incident.acknowledged_at is None and RESPOND not in sla.breaches:
        due.append(sla.respond_by)
    if incident.status.active and RESOLVE not in sla.breaches:
        due.append(sla.resolve_by)
    return min((d for d in due if d is not None), default=None)
