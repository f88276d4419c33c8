"""Incident state beyond the first cut survives restarts, and a version-1 store migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.catalogue.services import Catalogue, Service
from daemon.correlate.ruleset import RuleSet
from daemon.model import IncidentStatus, Source
from daemon.storage.database import Database
from daemon.storage.incidents import load_incidents
from daemon.storage.schema import APPLICATION_ID, LATEST, MIGRATIONS
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
RULES = RuleSet(catalogue=Catalogue(services=(Service(name="api", tier="high"),)))


async def test_priority_status_sla_and_links_survive_a_restart(tmp_path: Path) -> None:
    s = Stack(tmp_path, rules=RULES)
    alert = incoming(alertname="Down", service="api", severity="critical", starts_at=T0)
    transitions, _ = s.table.apply([alert], Source.ALERTMANAGER, T0)
    s.correlator.handle(transitions, T0)
    s.correlator.act(1, "acknowledge", T0 + 1000, "alice")  # late: respond breached
    s.correlator.link_change(1, 42, T0 + 1001, "deploy 5 min before")
    await s.writer.flush()
    s.close()

    r = Stack(tmp_path, rules=RULES)
    try:
        [incident], next_id = load_incidents(r.db.primary)
        assert next_id == 2
        assert (incident.status, incident.priority, incident.acknowledged_at) == (
            IncidentStatus.ACKNOWLEDGED,
            "P1",
            T0 + 1000,
        )
        assert incident.sla.breaches == {"respond"}
        assert (incident.sla.respond_by, incident.sla.resolve_by) == (T0 + 900, T0 + 4 * 3600)
        assert incident.sla.respond_target == 900
        assert incident.suspected_change == 42
        assert incident.firing == {alert.fingerprint: (T0, T0)}
        assert incident.signature == '{alertname="Down",service="api"}'
        r.correlator.restore([incident], next_id, T0)
        assert r.correlator.next_due() == T0 + 4 * 3600
    finally:
        r.close()


def test_a_version_1_store_migrates(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.db"
    conn = sqlite3.connect(path, isolation_level=None)
    _, sql = MIGRATIONS[0]
    conn.executescript(f"BEGIN; {sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("INSERT INTO incidents VALUES (1, 'k', 'api', 't', 'open', ?, NULL, 0)", (T0,))
    conn.execute("INSERT INTO counters VALUES ('itsmd_incidents_opened_total', '{\"service\": \"x\"}', 5)")
    conn.execute("INSERT INTO counters VALUES ('itsmd_alerts_received_total', '{\"source\": \"prometheus\"}', 7)")
    conn.close()
    db = Database(path)
    db.open()
    try:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        [incident], _ = load_incidents(db.primary)
        assert (incident.priority, incident.last_attached_at, incident.sla.breaches) == ("P3", T0, set())
        counters = db.conn.execute("SELECT name, value FROM counters").fetchall()
        assert counters == [("itsmd_alerts_received_total", 7)]
    finally:
        db.close()
