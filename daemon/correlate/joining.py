"""What a firing alert does to the incidents of its key: open a new one, attach to one, or reopen one.

One function, called by the correlator when an alert fires and by explain when it is asked, so explain
says what the daemon does: the correlation window and the reopen window are applied here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from daemon.correlate.rules import ResolvedRule
from daemon.durations import format_duration
from daemon.model import Incident, IncidentStatus


class Join(Enum):
    OPEN = "open"
    ATTACH = "attach"
    REOPEN = "reopen"


@dataclass(frozen=True, slots=True)
class Decision:
    join: Join
    incident: Incident | None
    """The incident attached to or reopened; None when a new one opens."""
    why: str
    revived: bool = False
    """The alert's expired episode came back: its own incident reopens whatever the reopen window."""


def decide(
    latest: Incident | None, rule: ResolvedRule | None, fingerprint: str, now: float, *, revived_of: int | None = None
) -> Decision:
    """`latest`: the newest incident of the alert's key still in memory (any status), `rule` the rule that
    incident was opened by (its windows apply, not those of the alert's rule, which a reload may change).
    `revived_of`: the incident of an alert whose expired episode is re-sent unchanged (it never ended)."""
    if latest is None or rule is None:
        return Decision(Join.OPEN, None, "no incident of this key")
    ref = f"incident {latest.id}"
    if latest.status.active:
        idle = now - latest.last_attached_at
        if rule.window > 0 and idle > rule.window:
            if fingerprint in latest.fingerprints:
                # Its own alert firing again belongs to it, however long ago the last one joined.
                return Decision(Join.ATTACH, latest, f"{ref} is {latest.status.value} and this alert is one of its own")
            return Decision(
                Join.OPEN,
                None,
                f"{ref} is {latest.status.value} but took its last alert {format_duration(idle)} ago, "
                f"beyond the correlation window of {format_duration(rule.window)} (rule {rule.name})",
            )
        return Decision(Join.ATTACH, latest, f"{ref} is {latest.status.value}")
    if latest.status is IncidentStatus.RESOLVED and revived_of == latest.id:
        # Its expiry resolved it at an estimated end that may lie beyond the reopen window; the episode never
        # ended, so its own incident reopens rather than a second one opening for it.
        return Decision(Join.REOPEN, latest, f"{ref} resolved when this alert expired; the alert came back", True)
    if latest.status is IncidentStatus.RESOLVED:
        since = now - (latest.resolved_at if latest.resolved_at is not None else now)
        window = f"the reopen window of {format_duration(rule.reopen_window)} (rule {rule.name})"
        if since <= rule.reopen_window:
            return Decision(Join.REOPEN, latest, f"{ref} resolved {format_duration(since)} ago, within {window}")
        return Decision(Join.OPEN, None, f"{ref} resolved {format_duration(since)} ago, beyond {window}")
    return Decision(Join.OPEN, None, f"{ref} is {latest.status.value}")
