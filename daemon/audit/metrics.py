"""The audit chain's metrics, read from memory at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.audit.log import AuditLog


class AuditCollector(Collector):
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "itsmd_audit_chain_ok",
            "1 if the audit chain's newest events, its anchor and the append-only triggers checked out at start.",
            value=int(self._audit.chain_ok),
        )
        yield GaugeMetricFamily(
            "itsmd_audit_chain_head_sequence",
            "Sequence number of the newest committed audit event.",
            value=self._audit.committed_head.seq,
        )
