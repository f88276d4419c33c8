"""Posts the current states to every configured Alertmanager each interval, as Prometheus posts its alerts.

Each round sends every state that holds, with endsAt `4 x interval` ahead, so Alertmanager keeps it firing
while rounds arrive and lets it resolve by itself if itsmd stops. A state that held in the previous round and
holds no more is sent once with endsAt = now (resolved). Each Alertmanager is tracked on its own: a failed
post is counted, logged and retried with the next round (resolves included); it never touches ingest, since
the states are read from memory and the posts run in this task only.

After a restart the first round goes out at once, re-publishing every state that still holds (the same label
sets, so the same fingerprints). A state that ended while itsmd was down gets no resolve from it; Alertmanager
resolves it when its last endsAt passes (at most 4 intervals after the last round before the stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.clock import Clock
from daemon.metrics.counters import CounterStore
from daemon.notify.publish.config import PublishConfig
from daemon.notify.publish.states import Key, Links, Sources, State, current
from integrations.alertmanager.client import AlertmanagerClient, AlertmanagerError

log = logging.getLogger(__name__)

NOTIFICATIONS = "itsmd_notifications_total"
ERRORS = "itsmd_notify_alertmanager_errors_total"
CHANNEL = "alertmanager"


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Target:
    """What one Alertmanager was last sent: the states it holds as firing, and resolves it still owes."""

    def __init__(self, client: AlertmanagerClient) -> None:
        self.client = client
        self.firing: dict[Key, State] = {}
        self.resolving: dict[Key, State] = {}


class Publisher:
    def __init__(
        self,
        clients: Sequence[AlertmanagerClient],
        *,
        sources: Sources,
        config: PublishConfig,
        links: Links,
        clock: Clock,
        counters: CounterStore,
    ) -> None:
        self._targets = [_Target(c) for c in clients]
        self._sources = sources
        self._config = config
        self._links = links
        self._clock = clock
        self._counters = counters
        self.published: dict[str, int] = dict.fromkeys(config.kinds, 0)
        """States of each kind that held at the latest round."""
        for target in self._targets:
            counters.ensure(ERRORS, (("alertmanager", target.client.url),))
            for kind in config.kinds:
                for outcome in ("sent", "failed"):
                    counters.ensure(NOTIFICATIONS, _labels(kind, outcome))

    @property
    def targets(self) -> list[str]:
        """The Alertmanagers published to (URLs safe to show)."""
        return [t.client.url for t in self._targets]

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """A round now, then one every interval; a round that fails is logged and the next one still runs."""
        while True:
            try:
                await self.publish()
            except Exception:
                log.exception("publishing states to Alertmanager failed")
            await sleep(self._config.interval)

    async def publish(self) -> None:
        """One round: every state now to every Alertmanager, and the resolves of states that ended."""
        now = self._clock.now()
        states = current(self._sources, self._config, self._links, now)
        counts: dict[str, int] = dict.fromkeys(self._config.kinds, 0)
        for state in states.values():
            counts[state.kind] += 1
        self.published = counts
        await asyncio.gather(*(self._send(target, states, now) for target in self._targets))

    async def _send(self, target: _Target, states: dict[Key, State], now: float) -> None:
        for key, state in target.firing.items():
            if key not in states:
                target.resolving[key] = state
        for key in states:
            target.resolving.pop(key, None)
        ends = now + self._config.ends_after
        body = [self._alert(s, ends) for s in states.values()]
        body += [self._alert(s, now) for s in target.resolving.values()]
        sent = list(states.values()) + list(target.resolving.values())
        try:
            if body:
                await target.client.post_alerts(body)
        except AlertmanagerError as exc:
            self._counters.inc(ERRORS, (("alertmanager", target.client.url),))
            self._count(sent, "failed")
            log.warning(
                "could not publish %d states to %s (retrying next round): %s", len(body), target.client.url, exc
            )
            # Whatever may have reached it stays owed a resolve should it end before the next success.
            target.firing = {**{k: s for k, s in target.firing.items() if k in states}, **states}
            return
        self._count(sent, "sent")
        target.firing = dict(states)
        target.resolving = {}

    def _count(self, states: Iterable[State], outcome: str) -> None:
        for state in states:
            self._counters.inc(NOTIFICATIONS, _labels(state.kind, outcome))

    def _alert(self, state: State, ends_at: float) -> dict[str, Any]:
        alert: dict[str, Any] = {
            "labels": state.labels,
            "annotations": state.annotations,
            "startsAt": rfc3339(min(state.starts_at, ends_at)),
            "endsAt": rfc3339(ends_at),
        }
        url = state.annotations.get("console_url", "")
        if self._links.absolute and url:
            alert["generatorURL"] = url
        return alert


def _labels(kind: str, outcome: str) -> tuple[tuple[str, str], ...]:
    return (("channel", CHANNEL), ("kind", kind), ("outcome", outcome))


class PublisherCollector(Collector):
    def __init__(self, publisher: Publisher, counters: CounterStore) -> None:
        self._publisher = publisher
        self._counters = counters

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "itsmd_notify_published_states", "States published to Alertmanager at the latest round.", labels=["kind"]
        )
        for kind, count in sorted(self._publisher.published.items()):
            gauge.add_metric([kind], count)
        yield gauge
        errors = CounterMetricFamily(
            ERRORS.removesuffix("_total"),
            "Rounds whose post to this Alertmanager failed (retried next round).",
            labels=["alertmanager"],
        )
        for labels, value in sorted(self._counters.series(ERRORS)):
            errors.add_metric([dict(labels).get("alertmanager", "")], value)
        yield errors
