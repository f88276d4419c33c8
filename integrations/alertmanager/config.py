"""The `alertmanager:` section of the config: where runbook silence steps create silences.

Same fields as `prometheus:` (url with an optional path prefix, timeout, bearer_token or bearer_token_file).
"""

from __future__ import annotations

import aiohttp

from integrations.alertmanager.client import AlertmanagerClient
from integrations.prometheus.config import ApiServerConfig


class AlertmanagerConfig(ApiServerConfig):
    """Base URL of Alertmanager, like http://alertmanager:9093."""

    def client(self, session: aiohttp.ClientSession) -> AlertmanagerClient:
        return AlertmanagerClient(session, str(self.url), timeout=self.timeout, headers=self.headers())
