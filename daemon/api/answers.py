"""The JSON each API handler answers with, as pydantic models: the OpenAPI document's response schemas.

The handlers build their answers as dicts (from the store's rows, the engine's runs); these models describe
them for clients and for schemathesis, which checks every answer against them. They name the fields a client
can rely on, with their types; `extra="allow"` keeps a field added to an answer from breaking a client that
validates strictly against an older document. Times are RFC 3339 strings in UTC, or null when not (yet) known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Time = str | None
"""RFC 3339, UTC; null while it has not happened."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(_Answer):
    """Every refusal: `reason` is the stable code to match on, `error` says what was wrong for a person."""

    status: Literal["error"]
    reason: str
    error: str


class Accepted(_Answer):
    status: Literal["success"]
    accepted: int = Field(ge=0)
    """How many alerts were durably stored."""


class Success(_Answer):
    status: Literal["success"]


class Healthy(_Answer):
    status: Literal["healthy"]


class Ready(_Answer):
    status: Literal["ready", "starting", "draining", "store_unavailable"]
    error: str | None = None
    """store_unavailable: the writer's last error."""


class OpenApiDocument(_Answer):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


class Sla(_Answer):
    respond_by: Time
    resolve_by: Time
    respond_target_seconds: float | None
    resolve_target_seconds: float | None
    paused: bool
    paused_by: str | None
    """status (acknowledged), or the maintenance window pausing the clock now."""
    breaches: list[str]


class Incident(_Answer):
    id: int
    key: str
    status: Literal["open", "acknowledged", "resolved", "closed"]
    service: str | None
    title: str
    priority: str
    opened_at: Time
    acknowledged_at: Time
    resolved_at: Time
    closed_at: Time
    resolved_by: str | None
    reopen_count: int
    alert_count: int
    rule: str | None
    signature: str | None
    sla: Sla
    resolution: dict[str, Any] | None
    flapping: bool
    problem_id: int | None
    workaround: str | None
    suspected_change: Any
    assignee: str | None = None
    """The principal working it; null: nobody."""
    team: str | None = None
    external: dict[str, str] | None = None
    """The incident's ticket in another system: system, key, url."""


class TimelineEntry(_Answer):
    at: Time
    kind: str
    detail: Any


class IncidentDetail(Incident):
    alerts: list[dict[str, Any]]
    timeline: list[TimelineEntry]


class Incidents(_Answer):
    incidents: list[Incident]


class Alert(_Answer):
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: Literal["firing", "resolved", "expired"]
    starts_at: Time
    ends_at: Time
    generator_url: str | None
    sources: list[str]
    first_seen: Time
    last_seen: Time
    times_seen: int
    state_changes: int
    incident_id: int | None
    flapping: bool


class Alerts(_Answer):
    alerts: list[Alert]


class Problem(_Answer):
    id: int
    signature: str | None
    service: str | None
    title: str
    status: str
    opened_at: Time
    updated_at: Time
    resolved_at: Time
    root_cause: str | None
    workaround: str | None
    runbook: str | None
    incident_count: int
    incidents: list[Any]


class Problems(_Answer):
    problems: list[Problem]


class AuditEvent(_Answer):
    id: int
    at: Time
    actor: str
    record_type: str
    record_id: Any
    action: str
    before: Any
    after: Any


class AuditEvents(_Answer):
    events: list[AuditEvent]


class Service(_Answer):
    name: str
    description: str | None
    owner: str | None
    team: str | None
    tier: Any
    availability_objective: float | None
    default: bool
    matchers: list[str]
    targets: dict[str, dict[str, Any]]
    """Per priority P1..P5: the effective respond and resolve targets."""
    maintenance: list[dict[str, Any]]


class Services(_Answer):
    services: list[Service]


class Decided(_Answer):
    action: str
    """open, attach or reopen"""
    why: str


class Explanation(_Answer):
    labels: dict[str, str]
    fingerprint: str
    service: dict[str, Any]
    rule: dict[str, Any]
    key: str
    signature: Any
    priority: dict[str, Any]
    title: str
    targets: dict[str, Any]
    incident: dict[str, Any] | None
    """The incident the alert would attach to or reopen; null when it would open a new one."""
    decision: Decided


class Approval(_Answer):
    message: str | None
    who: list[str]
    requested_at: Time
    expires_at: Time
    decision: str | None
    by: str | None
    on_behalf_of: str | None
    reason: str | None
    decided_at: Time


class Step(_Answer):
    index: int
    name: str
    action: str
    phase: Any
    status: str
    attempts: int
    started_at: Time
    ended_at: Time
    duration_seconds: float | None
    summary: Any
    output_digest: str | None
    output: Any
    plan: Any


class Run(_Answer):
    id: int
    runbook: str
    version: Any
    mode: str
    status: str
    reason: Any
    params: dict[str, Any]
    trigger: Any
    requested_by: str | None
    incident_id: int | None
    service: str | None
    emergency: bool
    lock_key: str | None
    lock_scope: Any
    approval: Approval | None
    change_id: int | None
    created_at: Time
    started_at: Time
    ended_at: Time
    duration_seconds: float | None
    steps: list[Step]


class Runs(_Answer):
    runs: list[Run]


class Plan(_Answer):
    dry_run: Literal[True]
    runbook: str
    plan: dict[str, Any]
    """Every step rendered (argv, URLs, queries, lock key, approvals); nothing was executed or stored."""


class Change(_Answer):
    id: int
    run_id: int | None
    runbook: str | None
    runbook_version: Any
    mode: str | None
    type: str
    risk: Any
    service: str | None
    incident_id: int | None
    requested_by: str | None
    trigger: Any
    run_status: str | None
    outcome: str | None
    reason: Any
    created_at: Time
    started_at: Time
    ended_at: Time
    approval: dict[str, Any] | None


class SuspectedIncident(_Answer):
    incident_id: int
    at: Time
    reason: Any


class ChangeDetail(Change):
    suspected_incidents: list[SuspectedIncident]
    events: list[TimelineEntry]


class Changes(_Answer):
    changes: list[Change]


class DrillRun(_Answer):
    id: int
    drill: str
    service: str
    trigger: str
    requested_by: str | None
    outcome: str
    reason: Any
    run_id: int | None
    started_at: Time
    ended_at: Time
    recovery_seconds: float | None
    rto_seconds: float | None
    rpo_seconds: float | None
    data_loss_seconds: float | None


class Drill(_Answer):
    name: str
    service: str
    runbook: str
    params: dict[str, Any]
    schedule: Any
    time_zone: Any
    enabled: bool
    rto_seconds: float | None
    rpo_seconds: float | None
    rpo_query: Any
    recovery: dict[str, Any]
    next_run: Time
    last: DrillRun | None
    running: DrillRun | None
    service_running: DrillRun | None
    service_last_success: Time


class Drills(_Answer):
    drills: list[Drill]


class Report(_Answer):
    """The JSON form of the monthly service report (format=json); md and html render the same report."""

    period: str
    start: float
    end: float
    generated_at: float
    time_zone: str
    services: list[dict[str, Any]]
    coverage: dict[str, Any]
    serviceless_changes: dict[str, int]


class WebhookReceiver(_Answer):
    name: str
    url: str
    events: list[str]
    pending: int
    oldest_pending_at: Time


class WebhookReceivers(_Answer):
    receivers: list[WebhookReceiver]


class DeadLetter(_Answer):
    event_id: str
    receiver: str
    kind: str
    created_at: Time
    dead_at: Time
    body: dict[str, Any]


class DeadLetters(_Answer):
    dead_letters: list[DeadLetter]
