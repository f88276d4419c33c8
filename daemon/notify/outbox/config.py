"""`notify.webhooks`: the receivers of signed webhooks, what each wants, and how hard to try."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from daemon.durations import PositiveDuration
from daemon.runbook.config import SecretSource


class EventKind(StrEnum):
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_REOPENED = "incident_reopened"
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    INCIDENT_PRIORITY_RAISED = "incident_priority_raised"
    INCIDENT_RESOLVED = "incident_resolved"
    INCIDENT_CLOSED = "incident_closed"
    INCIDENT_EXTERNAL = "incident_external"
    """An external ticket was recorded for the incident."""
    INCIDENT_ASSIGNED = "incident_assigned"
    """Its assignee or team changed (the body carries both, `assignee` null for nobody)."""
    INCIDENT_REPEATED = "incident_repeated"
    """The incident's signature belongs to an open problem (a recurrence)."""
    INCIDENT_KNOWN_ERROR = "incident_known_error"
    """The incident matches a problem in known_error state."""
    SLA_AT_RISK = "sla_at_risk"
    """A share of an SLA target is used (`notify.publish.sla_at_risk`): with `target`, `share`, `deadline`."""
    SLA_BREACHED = "sla_breached"
    PROBLEM_OPENED = "problem_opened"
    PROBLEM_KNOWN_ERROR = "problem_known_error"
    """A problem's root cause and workaround were recorded."""
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    RUN_ENDED = "run_ended"
    DRILL_ENDED = "drill_ended"
    DIGEST = "digest"
    """Storm control: events folded into one request (never subscribed to; sent to receivers in a storm)."""


Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class WebhookReceiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Names the receiver in metrics, the API and the outbox; renaming it orphans its pending events."""
    url: str = Field(pattern=r"^https?://[^\s]+$")
    secret: SecretSource
    """Signs every request (HMAC-SHA256); share it with the receiver."""
    events: tuple[EventKind, ...] = ()
    """Event kinds to send; empty: all."""
    services: tuple[str, ...] = ()
    """Only events of these services; empty: any."""
    priorities: tuple[Priority, ...] = ()
    teams: tuple[str, ...] = ()
    """Only events of services whose catalogue entry names one of these teams; empty: any."""
    timeout: PositiveDuration = 10.0
    """One request's limit; a slower answer counts as a failed attempt."""
    retry_initial: PositiveDuration = 1.0
    retry_max: PositiveDuration = 300.0
    """Retries back off exponentially from retry_initial, doubling up to retry_max between attempts."""
    max_age: PositiveDuration = 86400.0
    """An event not delivered this long after it happened is dead-lettered (kept, visible, never sent)."""
    rate_limit: float = Field(default=0.0, ge=0)
    """Requests per second at most; 0: no limit."""
    rate_burst: int = Field(default=1, gt=0)
    storm_threshold: int = Field(default=0, ge=0)
    """Above this many events in a minute, further events of that minute are folded into one digest that
    says how many it folded and of what; 0: never fold."""

    @field_validator("events")
    @classmethod
    def _no_digest(cls, value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
        if EventKind.DIGEST in value:
            raise ValueError("digest is not an event to subscribe to: set storm_threshold")
        return value


def unique_names(receivers: tuple[WebhookReceiver, ...]) -> tuple[WebhookReceiver, ...]:
    """For the validator of `notify.webhooks`."""
    names = [r.name for r in receivers]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"receiver names must be unique: {', '.join(dupes)}")
    return receivers
