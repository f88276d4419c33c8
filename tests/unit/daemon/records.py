"""Builders shared by the daemon's unit tests: real stores in a temp folder, alerts by label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from daemon.alerts.table import AlertTable
from daemon.audit.chain import ORIGIN
from daemon.audit.log import AuditLog
from daemon.audit.verify import stored_head
from daemon.catalogue.services import Catalogue, Service
from daemon.config import AlertsConfig
from daemon.correlate.incidents import Correlator
from daemon.correlate.rules import CorrelationRules
from daemon.correlate.ruleset import RuleSet
from daemon.metrics.counters import CounterStore
from daemon.model import IncomingAlert
from daemon.storage.database import Database
from daemon.storage.writer import GroupCommitWriter
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.configfiles import TEST_SERVICES


def incoming(
    *,
    firing: bool = True,
    starts_at: float = 1_800_000_000.0,
    ends_at: float | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> IncomingAlert:
    labels = labels or {"alertname": "TargetDown", "service": "api", "instance": "a"}
    return IncomingAlert(
        fingerprint=fingerprint(labels),
        labels=dict(labels),
        annotations=annotations or {},
        firing=firing,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url="",
    )


def ruleset(rules: CorrelationRules | RuleSet | None = None) -> RuleSet:
    """A catalogue of the services the tests use (each matching its service label), and the given rules."""
    if isinstance(rules, RuleSet):
        return rules
    catalogue = Catalogue(services=tuple(Service(name=n) for n in TEST_SERVICES))
    return RuleSet(catalogue=catalogue, correlation=rules or CorrelationRules())


class Stack:
    """The in-memory stages over a real SQLite file, as daemon.app wires them."""

    def __init__(
        self,
        path: Path,
        alerts: AlertsConfig | None = None,
        rules: CorrelationRules | RuleSet | None = None,
        *,
        at_risk_share: Callable[[str], float | None] = lambda priority: None,
    ) -> None:
        self.db = Database(path / "itsmd.db")
        self.db.open()
        self.writer = GroupCommitWriter(self.db, flush_interval=0.05)
        self.counters = CounterStore(self.writer)
        self.table = AlertTable(self.writer, alerts or AlertsConfig(), load_stored=lambda fps: {})
        # On a folder used before (a restart), the audit chain goes on from its stored head, as in the daemon.
        audit = AuditLog(self.writer, head=stored_head(self.db.primary) or ORIGIN)
        self.correlator = Correlator(
            self.writer, ruleset(rules), self.table, self.counters, audit=audit, at_risk_share=at_risk_share
        )

    def close(self) -> None:
        self.writer.shutdown_thread()
        self.db.close()
