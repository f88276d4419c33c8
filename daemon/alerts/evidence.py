"""When did an expired alert really end? The best evidence we have, since its sender went quiet.

An alert expires because nobody told us it ended (a lost resolve). The expiry instant is only when we gave
up waiting, up to `webhook_stale_after` after the last word: recording it as the end would book that whole
wait as outage. So an expiry records the last moment the alert is known to have fired:

- with `prometheus:` configured, the timestamp of the last sample of the alert's own
  `ALERTS{alertstate="firing", <its labels>}` series after it was last seen: Prometheus writes that sample at
  every rule evaluation while the alert fires, so the last one is the last evaluation that found it firing
  (labels equal to one of Prometheus' external labels are left out: it adds them when it sends alerts, its
  own series do not have them);
- otherwise (or when Prometheus does not answer in time, has no such sample, or fails) its last-seen time.

Either way the end is an estimate and says so, with where it came from and, on a fallback, why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon.model import Alert
from integrations.prometheus.client import PrometheusClient, selector
from integrations.prometheus.httpjson import UpstreamError

log = logging.getLogger(__name__)

PROMETHEUS, LAST_SEEN = "prometheus", "last_seen"
CONCURRENCY = 4
"""Queries at once: an expiring Alertmanager group of hundreds of alerts must not flood Prometheus."""


@dataclass(frozen=True, slots=True)
class EndEvidence:
    at: float
    source: str
    """prometheus | last_seen."""
    note: str | None = None
    """Why Prometheus gave no answer, when `source` is last_seen although Prometheus is configured."""


def last_seen(alert: Alert, note: str | None = None) -> EndEvidence:
    return EndEvidence(alert.last_seen, LAST_SEEN, note)


class EndFinder(Protocol):
    async def ends(self, alerts: Sequence[Alert], now: float) -> dict[str, EndEvidence]:
        """Evidence per fingerprint; never raises and returns within its own deadline."""
        ...


class LastSeen:
    """No Prometheus to ask: an expired alert ended, as far as we know, when it was last seen."""

    async def ends(self, alerts: Sequence[Alert], now: float) -> dict[str, EndEvidence]:
        return {a.fingerprint: last_seen(a) for a in alerts}


class PrometheusEnds:
    """Asks Prometheus for each alert's last firing ALERTS sample, all within one deadline."""

    def __init__(self, client: PrometheusClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def ends(self, alerts: Sequence[Alert], now: float) -> dict[str, EndEvidence]:
        limit = asyncio.Semaphore(CONCURRENCY)
        external: asyncio.Future[dict[str, str]] = asyncio.ensure_future(self._external_labels())

        async def one(alert: Alert) -> EndEvidence:
            added = await asyncio.shield(external)  # one task given up on must not cancel it for the others
            async with limit:
                return await self._end(alert, now, added)

        tasks = {a.fingerprint: asyncio.ensure_future(one(a)) for a in alerts}
        try:
            await asyncio.wait(tasks.values(), timeout=self._timeout)
        finally:  # also when the sweep itself is cancelled (shutdown): leave no query running
            external.cancel()
            for task in tasks.values():
                task.cancel()
        out: dict[str, EndEvidence] = {}
        for alert in alerts:
            task = tasks[alert.fingerprint]
            if not task.done() or task.cancelled():  # cancelled above, it may not have stopped yet
                out[alert.fingerprint] = last_seen(alert, f"Prometheus gave no answer within {self._timeout:g}s")
            elif (exc := task.exception()) is not None:
                log.error("expired alert %s: looking for its end failed", alert.fingerprint, exc_info=exc)
                out[alert.fingerprint] = last_seen(alert, f"looking for the end failed: {type(exc).__name__}")
            else:
                out[alert.fingerprint] = task.result()
        return out

    async def _external_labels(self) -> dict[str, str]:
        """Prometheus adds its external labels to the alerts it sends (unless the alert has the label), but its
        ALERTS series do not carry them. Not knowing them only means an exact match may fail."""
        try:
            return await self._client.external_labels()
        except UpstreamError as exc:
            log.info("could not read Prometheus' external labels, matching alerts' labels as they are: %s", exc)
            return {}

    async def _end(self, alert: Alert, now: float, external: Mapping[str, str]) -> EndEvidence:
        labels = {k: v for k, v in sorted(alert.labels.items()) if k not in ("alertstate", "__name__")}
        # A label with an external label's name and value may have been added on sending, or be the alert's own.
        own = {k: v for k, v in labels.items() if external.get(k) != v}
        accepted = [{**own, "alertstate": "firing", "__name__": "ALERTS"}]
        if own != labels:
            accepted.append({**labels, "alertstate": "firing", "__name__": "ALERTS"})
        query = selector("ALERTS", {**own, "alertstate": "firing"})
        try:
            series = await self._client.raw_samples(query, seconds=max(0.0, now - alert.last_seen), at=now)
        except (UpstreamError, ValueError) as exc:
            log.warning("expired alert %s: end from last-seen, Prometheus failed: %s", alert.fingerprint, exc)
            return last_seen(alert, f"Prometheus failed: {exc}")
        # Only the alert's own series: a matcher set can also match series with more labels.
        times = [t for s in series if s.labels in accepted for t, _ in s.points if t > alert.last_seen]
        if not times:
            return last_seen(alert, "Prometheus has no firing ALERTS sample after the alert was last seen")
        return EndEvidence(min(max(times), now), PROMETHEUS)
