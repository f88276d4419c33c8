"""Outbox metrics, read from memory at scrape time.

itsmd_notifications_total{channel="webhook",kind,outcome} (delivered, retried, dead, folded) is a stored counter
exported with the other stored counters (daemon/metrics/collector.py), beside the Alertmanager channel's series.
itsmd_outbox_pending{receiver}                    deliveries not yet delivered or dead-lettered
itsmd_outbox_oldest_pending_timestamp_seconds{receiver}
                                                  when the oldest pending delivery's event happened (no
                                                  series when nothing is pending)
itsmd_outbox_oldest_pending_age_seconds{receiver} how old that event is (0 when nothing is pending)
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.clock import Clock
from daemon.metrics.counters import CounterStore
from daemon.notify.outbox.outbox import Outbox


class OutboxCollector(Collector):
    def __init__(self, counters: CounterStore, outbox: Outbox, clock: Clock) -> None:
        self._counters = counters
        self._outbox = outbox
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "itsmd_outbox_pending", "Webhook deliveries not yet delivered or dead-lettered.", labels=["receiver"]
        )
        for receiver, n in sorted(self._outbox.depth().items()):
            depth.add_metric([receiver], n)
        yield depth
        oldest = self._outbox.oldest_pending()
        stamp = GaugeMetricFamily(
            "itsmd_outbox_oldest_pending_timestamp_seconds",
            "When the event of the receiver's oldest pending delivery happened.",
            labels=["receiver"],
        )
        age = GaugeMetricFamily(
            "itsmd_outbox_oldest_pending_age_seconds",
            "Age of the receiver's oldest pending delivery (0 when none is pending).",
            labels=["receiver"],
        )
        now = self._clock.now()
        for receiver in sorted(self._outbox.receivers):
            at = oldest.get(receiver)
            if at is not None:
                stamp.add_metric([receiver], at)
            age.add_metric([receiver], max(now - at, 0.0) if at is not None else 0.0)
        yield stamp
        yield age
