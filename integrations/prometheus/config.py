"""The `prometheus:` section of the config: where runbook promql and wait_until steps send queries.

Example::

    prometheus:
      url: https://prometheus.example.org/prom    # a path prefix (behind a proxy) is kept
      timeout: 10s
      bearer_token: ITSMD_PROMETHEUS_TOKEN         # or bearer_token_file: secrets/prometheus.token

The token is read once at load, sent as ``Authorization: Bearer ...`` and never shown: the config's repr and
every error message name only where it came from.
"""

from __future__ import annotations

import aiohttp
from pydantic import BaseModel, ConfigDict, HttpUrl, field_validator, model_validator

from daemon.credentials import EnvSecret, FileSecret, Secret
from daemon.durations import PositiveDuration
from daemon.runbook.config import secret_text
from integrations.prometheus.client import PrometheusClient
from integrations.prometheus.httpjson import base_url


class ApiServerConfig(BaseModel):
    """Where a Prometheus-family HTTP API is and how to authenticate to it (shared with Alertmanager's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    timeout: PositiveDuration = 10.0
    """Per request; a wait_until step polls with one request per interval, each bounded by this."""
    bearer_token: EnvSecret | None = None
    """Name of an environment variable holding a bearer token."""
    bearer_token_file: FileSecret | None = None
    """A file holding a bearer token (relative paths from the config file's folder)."""

    @field_validator("url")
    @classmethod
    def _usable_base(cls, value: HttpUrl) -> HttpUrl:
        base_url(str(value))  # no query string or fragment: the API path is appended to it
        return value

    @model_validator(mode="after")
    def _one_token(self) -> ApiServerConfig:
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        return self

    @property
    def token(self) -> Secret | None:
        return self.bearer_token or self.bearer_token_file

    def headers(self) -> dict[str, str]:
        """Request headers carrying the token (for the client only: never log them)."""
        return {} if self.token is None else {"Authorization": f"Bearer {secret_text(self.token)}"}


class PrometheusConfig(ApiServerConfig):
    """Base URL of Prometheus, like http://prometheus:9090 (or Thanos Query, Mimir's /prometheus prefix)."""

    def client(self, session: aiohttp.ClientSession) -> PrometheusClient:
        return PrometheusClient(session, str(self.url), timeout=self.timeout, headers=self.headers())
