"""The `prometheus:` section of the config: where runbook promql and wait_until steps send queries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, HttpUrl

from daemon.credentials import EnvSecret
from daemon.durations import PositiveDuration


class PrometheusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    """Base URL of Prometheus, like http://prometheus:9090."""
    timeout: PositiveDuration = 10.0
    bearer_token: EnvSecret | None = None
    """Name of an environment variable holding a bearer token, if Prometheus needs one."""
