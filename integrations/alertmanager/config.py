"""The `alertmanager:` section of the config: where runbook silence steps create silences."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, HttpUrl

from daemon.credentials import EnvSecret
from daemon.durations import PositiveDuration


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    """Base URL of Alertmanager, like http://alertmanager:9093."""
    timeout: PositiveDuration = 10.0
    bearer_token: EnvSecret | None = None
    """Name of an environment variable holding a bearer token, if Alertmanager needs one."""
