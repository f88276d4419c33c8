"""The publishing part of the `notify:` section: which Alertmanagers get itsmd's states, and how often.

Example::

    notify:
      external_url: https://itsmd.example.org     # console links in annotations
      alertmanagers:
        - url: https://alertmanager.example.org
          bearer_token_file: secrets/am.token
      publish:
        interval: 30s
        kinds: [ItsmdIncidentOpen, ItsmdSlaBreached]   # default: every kind
        sla_at_risk: {default: 0.8, P1: 0.5}
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from daemon.durations import PositiveDuration

Kind = Literal[
    "ItsmdIncidentOpen",
    "ItsmdSlaAtRisk",
    "ItsmdSlaBreached",
    "ItsmdApprovalPending",
    "ItsmdRunFailed",
    "ItsmdBreakerOpen",
    "ItsmdProblemCandidate",
    "ItsmdKnownErrorMatched",
    "ItsmdDrillFailed",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
MARK_LABEL = "itsmd_publisher"
"""Every alert itsmd publishes carries this label (value: `publish.instance`); ingest recognises it."""


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: PositiveDuration = 30.0
    """Every state is re-sent this often, with endsAt 4 intervals ahead (as Prometheus does)."""
    kinds: tuple[Kind, ...] = KINDS
    """Which kinds of state are published."""
    instance: str = Field(default="itsmd", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Value of the `itsmd_publisher` label: tells two itsmd daemons' alerts apart in one Alertmanager."""
    sla_at_risk: dict[str, float] = Field(default_factory=lambda: {"default": 0.8})
    """Share of a respond or resolve target used at which ItsmdSlaAtRisk fires, per priority (P1..P5), with
    `default` for the rest."""
    failed_runs_for: PositiveDuration = 86400.0
    """A failed or rollback_failed run is published this long after it ended (a held run: while it is held)."""

    @field_validator("sla_at_risk")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for key, share in value.items():
            if key != "default" and key not in ("P1", "P2", "P3", "P4", "P5"):
                raise ValueError(f"{key!r}: keys are P1..P5 or default")
            if not 0 < share < 1:
                raise ValueError(f"{key}: {share} is not a share between 0 and 1 (exclusive)")
        return value

    def at_risk_share(self, priority: str) -> float:
        return self.sla_at_risk.get(priority, self.sla_at_risk.get("default", 0.8))

    @property
    def ends_after(self) -> float:
        return 4 * self.interval
