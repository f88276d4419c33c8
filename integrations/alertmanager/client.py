"""Alertmanager's v2 silence API: create, read and expire, for runbooks that silence what they work on;
list, for itsmd's own GET /api/v2/silences, which reads through to the configured Alertmanager.

Expiring is idempotent from the caller's side: a silence that is already expired, or that Alertmanager no
longer knows (garbage-collected after its retention), counts as done. Alertmanager answers an unknown id
with 500 "silence not found" before 0.26 (prometheus/alertmanager#3352) and a second DELETE with 500
"already expired" before 0.24 (#2817), so a refused DELETE is followed by a GET that decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from integrations.alertmanager.silences import SilenceMatcher, check_silence_id, silence_body
from integrations.prometheus.httpjson import JsonApi, UpstreamError, redact_url

SILENCES_PATH = "api/v2/silences"
ALERTS_PATH = "api/v2/alerts"


def _silence_path(silence_id: str) -> str:
    return f"api/v2/silence/{check_silence_id(silence_id)}"


class AlertmanagerError(UpstreamError):
    """A silence call failed; ``retryable`` says whether asking again later may help."""


class SilenceNotFound(AlertmanagerError):
    """Alertmanager does not know this silence id (never created, or expired and garbage-collected)."""


class AlertmanagerClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._api = JsonApi(
            session, base_url, name="Alertmanager", error=AlertmanagerError, timeout=timeout, headers=headers
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._api.session

    @property
    def url(self) -> str:
        """The base URL, safe to show."""
        return redact_url(self._api.base)

    async def create_silence(
        self,
        matchers: Sequence[SilenceMatcher],
        *,
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
    ) -> str:
        """Create a silence; returns its id. Invalid matchers or times raise a non-retryable error."""
        try:
            body = silence_body(matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment)
        except ValueError as exc:
            raise AlertmanagerError(f"silence not sent: {exc}", False) from None
        status, raw = await self._api.call("POST", SILENCES_PATH, json_body=body)
        if not 200 <= status < 300:
            raise self._api.refused("POST", SILENCES_PATH, status, raw)
        answer = self._api.decode("POST", SILENCES_PATH, status, raw)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError(
                f"Alertmanager POST {self.url}: answer without silenceID: {str(answer)[:200]}", False
            )
        return silence_id

    async def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Post alerts as Prometheus does (v2 PostableAlerts); Alertmanager answers 200 with no body."""
        status, raw = await self._api.call("POST", ALERTS_PATH, json_body=list(alerts))
        if not 200 <= status < 300:
            raise self._api.refused("POST", ALERTS_PATH, status, raw)

    async def get_silence(self, silence_id: str) -> dict[str, Any]:
        """The silence as Alertmanager shows it (``status.state`` is active, pending or expired)."""
        path = self._path(silence_id)
        status, raw = await self._api.call("GET", path)
        if status == 404:
            raise SilenceNotFound(f"Alertmanager has no silence {silence_id}", False, status=404)
        if not 200 <= status < 300:
            raise self._api.refused("GET", path, status, raw)
        answer = self._api.decode("GET", path, status, raw)
        if not isinstance(answer, dict):
            raise AlertmanagerError(f"Alertmanager GET {self.url}: silence {silence_id} is not an object", False)
        return answer

    async def list_silences(self) -> list[dict[str, Any]]:
        """Every silence Alertmanager holds (active, pending and expired not yet garbage-collected)."""
        status, raw = await self._api.call("GET", SILENCES_PATH)
        if not 200 <= status < 300:
            raise self._api.refused("GET", SILENCES_PATH, status, raw)
        answer = self._api.decode("GET", SILENCES_PATH, status, raw)
        if not isinstance(answer, list) or not all(isinstance(s, dict) for s in answer):
            raise AlertmanagerError(f"Alertmanager GET {self.url}: the silences are not a list of objects", False)
        return answer

    async def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now; already expired or unknown is fine."""
        path = self._path(silence_id)
        status, raw = await self._api.call("DELETE", path)
        if 200 <= status < 300 or status == 404:
            return
        refused = self._api.refused("DELETE", path, status, raw)
        try:
            state = (await self.get_silence(silence_id)).get("status", {}).get("state")
        except SilenceNotFound:
            return
        except AlertmanagerError:
            raise refused from None
        if state != "expired":
            raise refused

    def _path(self, silence_id: str) -> str:
        try:
            return _silence_path(silence_id)
        except ValueError as exc:
            raise AlertmanagerError(str(exc), False) from None
