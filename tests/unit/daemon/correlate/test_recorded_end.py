"""An incident ends when the evidence says it ended: after an expiry (a lost resolve) at the alert's
estimated end, after a flapping hold at its last alert's end; and the availability ledger, the resolution
time (MTTR), the SLA clocks and the stored history all use that end, not the moment it was noticed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from daemon.alerts.evidence import EndEvidence
from daemon.availability.episodes import stored_episodes
from daemon.availability.tracker import AvailabilityTracker
from daemon.catalogue.services import Catalogue, Service
from daemon.clock import ManualClock
from daemon.config import AlertsConfig
from daemon.correlate.metrics import RESOLUTION_DURATION, WITHDRAWN, pairs
from daemon.correlate.rules import CorrelationRules, Flapping
from daemon.correlate.ruleset import RuleSet
from daemon.model import Alert, Incident, IncidentStatus, IncomingAlert, Source
from daemon.pipeline import Pipeline
from daemon.storage.availability import load_histories
from daemon.storage.incidents import load_incidents
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0
STALE = 4 * 3600.0 + 15 * 60.0
"""The default webhook_stale_after: longer than a P1's 4h resolve target."""
HOUR = 3600.0


def catalogue() -> Catalogue:
    return Catalogue(services=(Service(name="api", tier="high"),))


class Harness:
    def __init__(self, tmp_path: Path, rules: CorrelationRules | None = None) -> None:
        self.clock = ManualClock(T0)
        self.stack = Stack(
            tmp_path,
            AlertsConfig(webhook_stale_after=STALE),
            RuleSet(catalogue=catalogue(), correlation=rules or CorrelationRules()),
        )
        s = self.stack
        self.pipeline = Pipeline(s.table, s.correlator, s.writer, s.counters, self.clock, commit_timeout=5)
        self.availability = AvailabilityTracker(catalogue, self.clock, [86400.0])
        self.stack.correlator.subscribe(self.availability.on_incident_event)

    def feed(self, *alerts: IncomingAlert) -> None:
        transitions, _ = self.stack.table.apply(list(alerts), Source.ALERTMANAGER, self.clock.now())
        self.stack.correlator.handle(transitions, self.clock.now())

    def at(self, t: float) -> None:
        self.clock.advance(t - self.clock.now())

    def incident(self) -> Incident:
        (incident,) = self.stack.correlator.incidents()
        return incident

    async def timeline(self) -> list[tuple[str, dict[str, object]]]:
        await self.stack.writer.flush()
        rows = self.stack.db.conn.execute("SELECT kind, detail FROM timeline ORDER BY id")
        return [(kind, json.loads(detail)) for kind, detail in rows]

    def downtime(self) -> float:
        return self.availability.ledger.downtime("api", self.clock.now())[0]

    def mttr_sum(self) -> float:
        return self.stack.counters.get(f"{RESOLUTION_DURATION}_sum", pairs(priority="P1"))


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.stack.close()


def down(firing: bool = True, ends_at: float | None = None, instance: str = "a") -> IncomingAlert:
    return incoming(
        firing=firing, ends_at=ends_at, alertname="ApiDown", service="api", severity="critical", instance=instance
    )


async def test_lost_resolve_ends_at_last_seen_without_prometheus(h: Harness) -> None:
    h.feed(down())
    h.at(T0 + 600)
    h.feed(down())  # the last re-send: the resolve that should have followed is lost
    h.at(T0 + 600 + STALE)
    await h.pipeline.sweep()
    incident = h.incident()
    assert incident.priority == "P1"
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == T0 + 600
    # The outage, the resolution time and the SLA are the 10 minutes the evidence shows, not 4h25m.
    assert h.downtime() == 600
    assert h.mttr_sum() == 600
    assert incident.sla.breaches == set()
    timeline = await h.timeline()
    expired = next(d for k, d in timeline if k == "alert_expired")
    assert expired["ended_at"] == T0 + 600
    assert (expired["end_estimated"], expired["end_source"]) == (True, "last_seen")
    kind, resolved = timeline[-1]
    assert kind == "resolved"
    assert resolved == {"by": "expiry", "ended_at": T0 + 600, "end_estimated": True, "end_source": "last_seen"}
    # The stored history (restart, report) reads the same outage.
    episodes = stored_episodes(load_histories(h.stack.db.primary), catalogue())
    assert [(e.start, e.end) for e in episodes] == [(T0, T0 + 600)]


class Answering:
    """An end finder that says what Prometheus would, and can act while it is being asked."""

    def __init__(self, at: float | None, during: object = None) -> None:
        self.at = at
        self.during = during
        self.asked: list[str] = []

    async def ends(self, alerts: Sequence[Alert], now: float) -> dict[str, EndEvidence]:
        self.asked.extend(a.fingerprint for a in alerts)
        if callable(self.during):
            self.during()
        if self.at is None:
            return {a.fingerprint: EndEvidence(a.last_seen, "last_seen", "Prometheus failed: boom") for a in alerts}
        return {a.fingerprint: EndEvidence(self.at, "prometheus") for a in alerts}


async def test_prometheus_evidence_sets_the_end(h: Harness) -> None:
    h.pipeline.end_finder = Answering(T0 + 900)
    h.feed(down())
    h.at(T0 + 600)
    h.feed(down())
    h.at(T0 + 600 + STALE)
    await h.pipeline.sweep()
    assert h.incident().resolved_at == T0 + 900
    assert h.downtime() == 900
    assert h.mttr_sum() == 900
    assert (await h.timeline())[-1][1]["end_source"] == "prometheus"


async def test_a_failed_query_falls_back_to_last_seen_and_says_why(h: Harness) -> None:
    h.pipeline.end_finder = Answering(None)
    h.feed(down())
    h.at(T0 + 600 + STALE)
    await h.pipeline.sweep()
    assert h.incident().resolved_at == T0
    expired = next(d for k, d in await h.timeline() if k == "alert_expired")
    assert (expired["end_source"], expired["end_note"]) == ("last_seen", "Prometheus failed: boom")


async def test_an_alert_re_sent_while_prometheus_is_asked_does_not_expire(h: Harness) -> None:
    h.feed(down())
    h.at(T0 + STALE)
    finder = Answering(T0 + 30, during=lambda: h.feed(down()))
    h.pipeline.end_finder = finder
    await h.pipeline.sweep()
    assert finder.asked
    assert h.incident().status is IncidentStatus.OPEN
    assert h.stack.table.firing_count == 1


async def test_a_breach_recorded_before_the_expiry_is_withdrawn(h: Harness) -> None:
    h.feed(down())
    h.at(T0 + 60)
    h.stack.correlator.act(1, "acknowledge", h.clock.now(), "alice")
    h.at(T0 + 600)
    h.feed(down())
    # The scheduler finds the P1's 4h resolve target passed while the incident still looks open...
    h.at(T0 + 4 * HOUR + 1)
    h.stack.correlator.run_due(h.clock.now())
    assert "resolve" in h.incident().sla.breaches
    # ...and the expiry then shows that the outage had ended at T0 + 600, in time.
    h.at(T0 + 600 + STALE)
    await h.pipeline.sweep()
    incident = h.incident()
    assert incident.sla.breaches == set()
    timeline = await h.timeline()
    kinds = [k for k, _ in timeline]
    # Both stay on record: what was believed at 4h, and what the evidence showed at expiry.
    assert kinds[-4:] == ["sla_breached", "alert_expired", "sla_breach_withdrawn", "resolved"]
    withdrawn = timeline[-2][1]
    assert withdrawn["target"] == "resolve"
    assert withdrawn["ended_at"] == T0 + 600
    assert h.stack.counters.get(WITHDRAWN, pairs(service="api", priority="P1", target="resolve")) == 1


async def test_an_outage_past_its_target_is_still_breached_at_its_end(h: Harness) -> None:
    h.feed(down())
    h.at(T0 + 5 * HOUR)
    h.feed(down())  # still firing after the 4h target, then the resolve is lost
    h.at(T0 + 5 * HOUR + STALE)
    await h.pipeline.sweep()
    incident = h.incident()
    assert incident.resolved_at == T0 + 5 * HOUR
    assert "resolve" in incident.sla.breaches
    assert h.downtime() == 5 * HOUR


async def test_the_latest_end_of_any_alert_is_the_incident_end(h: Harness) -> None:
    h.feed(down(instance="a"), down(instance="b"))
    h.at(T0 + 300)
    h.feed(down(instance="b"))  # b's last word
    h.at(T0 + 1200)
    h.feed(down(instance="a", firing=False, ends_at=T0 + 1190))  # a resolves properly, later than b was seen
    h.at(T0 + 300 + STALE)
    await h.pipeline.sweep()
    incident = h.incident()
    assert incident.resolved_at == T0 + 1190
    # The end that decided is a sender's resolve: not estimated, though the last alert to go expired.
    resolved = (await h.timeline())[-1][1]
    assert resolved["ended_at"] == T0 + 1190
    assert "end_estimated" not in resolved
    assert h.downtime() == 1190


async def test_a_restart_keeps_the_ends_of_alerts_already_ended(h: Harness) -> None:
    h.feed(down(instance="a"), down(instance="b"))
    h.at(T0 + 1200)
    h.feed(down(instance="a", firing=False, ends_at=T0 + 1190))
    await h.stack.writer.flush()
    (restored,), _ = load_incidents(h.stack.db.primary)
    assert (restored.ended_at, restored.end_source) == (T0 + 1190, None)
    assert list(restored.firing) == [down(instance="b").fingerprint]


async def test_a_flapping_incident_ends_when_its_last_alert_ended_not_when_the_hold_ends(tmp_path: Path) -> None:
    h = Harness(tmp_path, CorrelationRules(flapping=Flapping(window=900.0, enter=4, leave=1)))
    try:
        t = T0
        for _ in range(3):  # fire, resolve, fire, resolve, ...: flapping from the 4th change on
            h.at(t)
            h.feed(incoming(starts_at=t, alertname="ApiDown", service="api", severity="critical"))
            h.at(t + 60)
            h.feed(
                incoming(
                    firing=False, starts_at=t, ends_at=t + 50, alertname="ApiDown", service="api", severity="critical"
                )
            )
            t += 120
        last_end = t - 120 + 50
        incident = h.incident()
        assert incident.flapping and incident.status.active  # held
        while incident.status.active:  # the scheduler's wake-ups: SLA deadlines, then the flapping's end
            due = h.stack.correlator.next_due()
            assert due is not None
            h.at(max(due, h.clock.now()))
            h.stack.correlator.run_due(h.clock.now())
        assert h.clock.now() > last_end + 600  # the hold lasted well past the last alert's end
        assert incident.status is IncidentStatus.RESOLVED
        assert incident.resolved_at == last_end
        resolved = (await h.timeline())[-1][1]
        assert resolved["ended_at"] == last_end
        assert resolved["after"] == "flapping stopped"
        assert "end_estimated" not in resolved  # the sender said when it ended
        # Before it flapped it resolved once (T0..T0+50, the first resolution MTTR counts) and reopened at
        # T0+120; that episode ran to the last alert's end, not to the end of the hold.
        assert h.downtime() == 50 + (last_end - (T0 + 120))
        assert h.mttr_sum() == 50
        episodes = stored_episodes(load_histories(h.stack.db.primary), catalogue())
        assert [(e.start, e.end) for e in episodes] == [(T0, T0 + 50), (T0 + 120, last_end)]
    finally:
        h.stack.close()


async def test_a_flapping_hold_ends_after_a_restart_one_window_after_it(tmp_path: Path) -> None:
    rules = CorrelationRules(flapping=Flapping(window=900.0, enter=4, leave=1))
    h = Harness(tmp_path, rules)
    t = T0
    for _ in range(3):  # fire, resolve, fire, resolve, ...: flapping from the 4th change on, then held
        h.at(t)
        h.feed(incoming(starts_at=t, alertname="ApiDown", service="api", severity="critical"))
        h.at(t + 60)
        h.feed(
            incoming(firing=False, starts_at=t, ends_at=t + 50, alertname="ApiDown", service="api", severity="critical")
        )
        t += 120
    last_end = t - 120 + 50
    assert h.incident().flapping and h.incident().status.active and not h.incident().firing
    await h.stack.writer.flush()
    h.stack.close()

    restart = h.clock.now() + 30
    again = Harness(tmp_path, rules)
    try:
        again.at(restart)
        again.stack.correlator.restore(*load_incidents(again.stack.db.primary), restart)
        incident = again.incident()
        # The changes it was counted from are gone: it flaps until a whole window passes without one.
        assert incident.flapping and again.stack.correlator.is_flapping(next(iter(incident.flapping)))
        while incident.status.active:  # the scheduler's wake-ups: SLA deadlines, then the flapping's end
            due = again.stack.correlator.next_due()
            assert due is not None, "nothing wakes the scheduler: the hold never ends"
            assert due <= restart + 900
            again.at(max(due, again.clock.now()))
            again.stack.correlator.run_due(again.clock.now())
        assert again.clock.now() == restart + 900
        assert incident.status is IncidentStatus.RESOLVED and incident.flapping == set()
        assert incident.resolved_at == last_end  # the last alert's end, not the restart or the hold's end
        timeline = await again.timeline()
        assert [kind for kind, _ in timeline].count("flapping_stopped") == 1
        assert timeline[-1] == ("resolved", {"by": "alerts", "after": "flapping stopped", "ended_at": last_end})
    finally:
        again.stack.close()


async def test_an_expired_alert_the_sender_revives_reopens_its_incident(h: Harness) -> None:
    h.feed(down())
    h.at(T0 + 600)
    h.feed(down())
    h.at(T0 + 600 + STALE)
    await h.pipeline.sweep()
    incident = h.incident()
    assert incident.resolved_at == T0 + 600  # more than the 30m reopen window ago
    h.at(T0 + 600 + STALE + 60)
    h.feed(down())  # the same episode again: it never ended, the estimate was wrong
    assert h.stack.correlator.incidents() == [incident]
    assert incident.status is IncidentStatus.OPEN
    assert (await h.timeline())[-2] == ("reopened", {"alert": down().fingerprint, "revived": True})
