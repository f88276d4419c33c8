"""itsmd_leader and itsmd_replica_info, from the replica's state at scrape time (leader and follower apps)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.replica.state import ReplicaState


class ReplicaCollector(Collector):
    def __init__(self, state: ReplicaState) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state
        leading = state.leading
        yield GaugeMetricFamily(
            "itsmd_leader",
            "1 while this replica leads (holds the lease and its local deadline has not passed); always 1 on a "
            "single node.",
            value=int(leading),
        )
        info = GaugeMetricFamily(
            "itsmd_replica_info",
            "This replica: its name, its role now and the lease epoch it last saw (empty: none yet).",
            labels=["replica", "role", "epoch"],
        )
        role = "leader" if leading else "follower"
        info.add_metric([state.name, role, "" if state.epoch is None else str(state.epoch)], 1)
        yield info
        yield GaugeMetricFamily(
            "itsmd_replica_database_up",
            "1 while this replica reaches its database (checked with the lease every renew interval); a single "
            "node: 1 while its store is open.",
            value=int(state.database_up()),
        )
