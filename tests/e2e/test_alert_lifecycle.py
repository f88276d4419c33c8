"""One outage of the flappy target, end to end, in order (each step builds on the state the last one left):

1. the target goes down: Prometheus fires TargetDown, itsmd opens an incident, fed by Alertmanager's webhook;
2. Prometheus's own push and the webhook land on one alert, with Alertmanager's fingerprint;
3. itsmd is SIGKILLed while the incident is open: after a restart everything is still there;
4. the target recovers: the incident resolves;
5. itsmd is SIGKILLed again: the resolved incident and its alert are still there;
6. the target goes down again inside reopen_window: the same incident reopens; then it recovers again;
7. /metrics counted both paths;
8. SIGTERM stops itsmd cleanly (exit code 0), and its log holds no traceback.

Run the module as a whole: a step fails at once, saying so, if the step before it did not run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .client import get_json, request, wait_for, wait_until
from .stack import ALERTNAME, SERVICE, Stack

pytestmark = pytest.mark.e2e

# Deadlines. Measured on this kind of machine (realstack NOTES): flip to Prometheus push ~1.1 s,
# to Alertmanager webhook ~2.1 s (group_wait 1 s), resolves ~1-3 s; Alertmanager re-sends every 10-12 s.
FIRE_TIMEOUT = 20.0
RESOLVE_TIMEOUT = 20.0
RESEND_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 20.0  # itsmd's own shutdown_timeout defaults to 15 s

Json = dict[str, Any]


@dataclass
class Outage:
    """What the steps learned so far, shared along the module."""

    incident_id: int | None = None
    fingerprint: str | None = None
    steps_done: set[str] = field(default_factory=set)

    def require(self, step: str) -> tuple[int, str]:
        if step not in self.steps_done or self.incident_id is None or self.fingerprint is None:
            pytest.fail(f"step {step!r} did not pass before this one; run the whole module", pytrace=False)
        return self.incident_id, self.fingerprint


@pytest.fixture(scope="module")
def outage() -> Outage:
    return Outage()


# ------------------------------------------------------------------------------------------ itsmd API


def itsmd_get(stack: Stack, path: str) -> Any:
    """GET from itsmd; if itsmd has died, fail at once with its log instead of waiting out a deadline."""
    stack.itsmd.check_alive()
    return get_json(f"{stack.itsmd_url}{path}")


def incidents(stack: Stack, status: str = "all") -> list[Json]:
    found: list[Json] = itsmd_get(stack, f"/api/v1/incidents?status={status}")["incidents"]
    return found


def flappy_incidents(stack: Stack, status: str = "all") -> list[Json]:
    return [i for i in incidents(stack, status) if ALERTNAME in i["key"] and i["service"] == SERVICE]


def incident(stack: Stack, incident_id: int) -> Json:
    found: Json = itsmd_get(stack, f"/api/v1/incidents/{incident_id}")
    return found


def alerts(stack: Stack, status: str = "all") -> list[Json]:
    found: list[Json] = itsmd_get(stack, f"/api/v1/alerts?status={status}")["alerts"]
    return found


def target_down_alerts(stack: Stack) -> list[Json]:
    return [a for a in alerts(stack) if a["labels"].get("alertname") == ALERTNAME]


def alert(stack: Stack, fingerprint: str) -> Json:
    found: Json = itsmd_get(stack, f"/api/v1/alerts/{fingerprint}")
    return found


def state_of(stack: Stack) -> str:
    """Everything relevant, for the message of a wait that timed out."""
    parts = [f"target: {get_json(f'{stack.target_url}/_control')}"]
    for name, url in (
        ("itsmd incidents", f"{stack.itsmd_url}/api/v1/incidents?status=all"),
        ("itsmd alerts", f"{stack.itsmd_url}/api/v1/alerts?status=all"),
        ("Alertmanager alerts", f"{stack.am_url}/api/v2/alerts"),
    ):
        resp = request("GET", url)
        parts.append(f"{name}: HTTP {resp.status} {resp.text()[:3000]}")
    return "\n".join(parts)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def timeline_kinds(detail: Json) -> list[str]:
    return [str(entry["kind"]) for entry in detail["timeline"]]


# ------------------------------------------------------------------------------ crash-safety snapshot


@dataclass(frozen=True)
class Snapshot:
    """The durable facts the API reports; last_seen, times_seen and ends_at of firing alerts are
    refreshed by every re-send (and may be flushed lazily), so they are left out."""

    incidents: dict[int, Json]
    timelines: dict[int, set[tuple[str, str]]]
    attached: dict[int, set[str]]
    alerts: dict[str, Json]

    @classmethod
    def take(cls, stack: Stack) -> Snapshot:
        listed = incidents(stack, "all")
        details = {i["id"]: incident(stack, i["id"]) for i in listed}
        return cls(
            incidents={
                i["id"]: {k: i[k] for k in ("id", "key", "status", "service", "title", "opened_at", "resolved_at")}
                for i in listed
            },
            timelines={iid: {(e["at"], e["kind"]) for e in d["timeline"]} for iid, d in details.items()},
            attached={iid: {a["fingerprint"] for a in d["alerts"]} for iid, d in details.items()},
            alerts={
                a["fingerprint"]: {
                    k: a[k] for k in ("fingerprint", "labels", "status", "starts_at", "sources", "incident_id")
                }
                for a in alerts(stack, "all")
            },
        )

    def assert_still_in(self, after: Snapshot) -> None:
        for iid, before in self.incidents.items():
            assert iid in after.incidents, f"incident {iid} is gone after the restart: {before}"
            assert after.incidents[iid] == before, f"incident {iid} changed across the restart"
            missing = self.timelines[iid] - after.timelines[iid]
            assert not missing, f"incident {iid} lost timeline entries across the restart: {sorted(missing)}"
            lost = self.attached[iid] - after.attached[iid]
            assert not lost, f"incident {iid} lost attached alerts across the restart: {sorted(lost)}"
        for fingerprint, before in self.alerts.items():
            assert fingerprint in after.alerts, f"alert {fingerprint} is gone after the restart: {before}"
            assert after.alerts[fingerprint] == before, f"alert {fingerprint} changed across the restart"


def kill_and_restart(stack: Stack) -> tuple[Snapshot, Snapshot, datetime]:
    before = Snapshot.take(stack)
    assert before.incidents, "nothing to check: no incident before the kill"
    stack.kill_itsmd()
    restarted_at = datetime.now(UTC)
    stack.start_itsmd()
    after = Snapshot.take(stack)
    before.assert_still_in(after)
    return before, after, restarted_at


# -------------------------------------------------------------------------------------------- steps


def test_target_down_opens_incident_via_webhook(stack: Stack, outage: Outage) -> None:
    assert flappy_incidents(stack) == [], "an incident for the flappy target exists before the outage"
    stack.set_target_down(True)

    opened = wait_until(
        lambda: flappy_incidents(stack, "open"),
        timeout=FIRE_TIMEOUT,
        what="an open incident for TargetDown on flappy-api",
        describe=lambda: state_of(stack),
    )
    assert len(opened) == 1, f"one outage, one incident: {opened}"
    inc = opened[0]
    assert inc["status"] == "open"
    assert inc["resolved_at"] is None
    assert inc["alert_count"] == 1, inc
    parse_time(inc["opened_at"])  # RFC 3339, or this raises

    detail = incident(stack, inc["id"])
    assert [a["labels"]["alertname"] for a in detail["alerts"]] == [ALERTNAME], detail
    fingerprint = detail["alerts"][0]["fingerprint"]
    assert "opened" in timeline_kinds(detail), detail["timeline"]

    # The Prometheus push (~1 s) usually beats the webhook (~2 s): wait for the webhook to be seen too.
    seen = wait_for(
        lambda: alert(stack, fingerprint),
        lambda a: "alertmanager" in a["sources"],
        timeout=FIRE_TIMEOUT,
        what=f"alert {fingerprint} to be reported by the Alertmanager webhook",
        describe=lambda: state_of(stack),
    )
    assert seen["status"] == "firing", seen
    assert seen["incident_id"] == inc["id"], seen
    assert seen["labels"]["service"] == SERVICE, seen

    outage.incident_id, outage.fingerprint = inc["id"], fingerprint
    outage.steps_done.add("opened")


def test_prometheus_push_and_webhook_are_one_alert(stack: Stack, outage: Outage) -> None:
    incident_id, fingerprint = outage.require("opened")

    both = wait_for(
        lambda: alert(stack, fingerprint),
        lambda a: {"alertmanager", "prometheus"} <= set(a["sources"]),
        timeout=FIRE_TIMEOUT,
        what=f"alert {fingerprint} to be reported by both Prometheus and Alertmanager",
        describe=lambda: state_of(stack),
    )
    assert sorted(both["sources"]) == ["alertmanager", "prometheus"], both

    listed = target_down_alerts(stack)
    assert [a["fingerprint"] for a in listed] == [fingerprint], f"the two paths did not dedup: {listed}"

    from_am = [a for a in stack.am_alerts() if a["labels"].get("alertname") == ALERTNAME]
    assert len(from_am) == 1, from_am
    assert from_am[0]["fingerprint"] == fingerprint, (
        f"itsmd computed {fingerprint}, Alertmanager reports {from_am[0]['fingerprint']}"
    )
    assert both["labels"] == from_am[0]["labels"], (both["labels"], from_am[0]["labels"])

    inc = incident(stack, incident_id)
    assert inc["status"] == "open"
    assert inc["alert_count"] == 1, inc
    assert [a["fingerprint"] for a in inc["alerts"]] == [fingerprint], inc["alerts"]
    outage.steps_done.add("deduplicated")


def test_open_incident_survives_sigkill(stack: Stack, outage: Outage) -> None:
    incident_id, fingerprint = outage.require("deduplicated")

    before, after, restarted_at = kill_and_restart(stack)
    assert before.incidents[incident_id]["status"] == "open"
    assert after.alerts[fingerprint]["status"] == "firing"

    # Alertmanager re-sends the firing group every repeat_interval (10 s): that re-send must land on the
    # same alert and incident in the restarted daemon, not open a second one.
    wait_until(
        lambda: parse_time(alert(stack, fingerprint)["last_seen"]) > restarted_at,
        timeout=RESEND_TIMEOUT,
        what=f"a re-send of alert {fingerprint} to reach the restarted itsmd",
        describe=lambda: state_of(stack),
    )
    assert [i["id"] for i in flappy_incidents(stack)] == [incident_id]
    assert [a["fingerprint"] for a in target_down_alerts(stack)] == [fingerprint]
    assert incident(stack, incident_id)["status"] == "open"
    outage.steps_done.add("survived open")


def test_target_recovers_resolves_incident(stack: Stack, outage: Outage) -> None:
    incident_id, fingerprint = outage.require("survived open")
    stack.set_target_down(False)

    resolved = wait_for(
        lambda: incident(stack, incident_id),
        lambda i: i["status"] == "resolved",
        timeout=RESOLVE_TIMEOUT,
        what=f"incident {incident_id} to resolve",
        describe=lambda: state_of(stack),
    )
    assert resolved["resolved_at"] is not None, resolved
    assert parse_time(resolved["resolved_at"]) >= parse_time(resolved["opened_at"]), resolved
    kinds = timeline_kinds(resolved)
    assert "opened" in kinds, resolved["timeline"]
    assert "resolved" in kinds, resolved["timeline"]
    assert kinds.index("opened") < kinds.index("resolved"), resolved["timeline"]

    gone = alert(stack, fingerprint)
    assert gone["status"] == "resolved", gone
    assert gone["ends_at"] is not None, gone
    assert flappy_incidents(stack, "open") == []
    assert [i["id"] for i in flappy_incidents(stack, "resolved")] == [incident_id]
    outage.steps_done.add("resolved")


def test_resolved_incident_survives_sigkill(stack: Stack, outage: Outage) -> None:
    incident_id, fingerprint = outage.require("resolved")

    _, after, _ = kill_and_restart(stack)
    assert after.incidents[incident_id]["status"] == "resolved"
    assert after.incidents[incident_id]["resolved_at"] is not None
    assert after.alerts[fingerprint]["status"] == "resolved"
    outage.steps_done.add("survived resolved")


def test_target_down_again_reopens_same_incident(stack: Stack, outage: Outage) -> None:
    incident_id, fingerprint = outage.require("survived resolved")
    before = incident(stack, incident_id)
    first_start = parse_time(alert(stack, fingerprint)["starts_at"])
    stack.set_target_down(True)

    reopened = wait_for(
        lambda: incident(stack, incident_id),
        lambda i: i["status"] == "open",
        timeout=FIRE_TIMEOUT,
        what=f"incident {incident_id} to reopen (reopen_window is long)",
        describe=lambda: state_of(stack),
    )
    assert reopened["resolved_at"] is None, reopened
    assert reopened["opened_at"] == before["opened_at"], (before, reopened)
    assert "reopened" in timeline_kinds(reopened)[len(before["timeline"]) :], reopened["timeline"]
    assert [i["id"] for i in flappy_incidents(stack)] == [incident_id], "a new incident instead of a reopen"

    again = alert(stack, fingerprint)
    assert again["status"] == "firing", again
    assert again["incident_id"] == incident_id, again
    assert parse_time(again["starts_at"]) > first_start, (first_start, again)
    assert [a["fingerprint"] for a in target_down_alerts(stack)] == [fingerprint]

    # Leave the stack calm: the second outage resolves the same incident again.
    stack.set_target_down(False)
    wait_until(
        lambda: incident(stack, incident_id)["status"] == "resolved",
        timeout=RESOLVE_TIMEOUT,
        what=f"incident {incident_id} to resolve a second time",
        describe=lambda: state_of(stack),
    )
    outage.steps_done.add("reopened")


def test_metrics_count_both_paths(stack: Stack, outage: Outage) -> None:
    outage.require("reopened")
    resp = request("GET", f"{stack.itsmd_url}/metrics")
    assert resp.status == 200, resp.text()
    samples = {
        (s.name, json.dumps(s.labels, sort_keys=True)): s.value
        for family in text_string_to_metric_families(resp.text())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, json.dumps(labels, sort_keys=True)))

    # Both paths delivered the second outage to this (restarted) process.
    for source in ("alertmanager", "prometheus"):
        received = value("itsmd_alerts_received_total", source=source)
        assert received is not None, f"no itsmd_alerts_received_total{{source={source!r}}} in /metrics"
        assert received > 0, source
    assert value("itsmd_incidents_open", service=SERVICE) in (None, 0.0)


def test_sigterm_stops_cleanly(stack: Stack, outage: Outage) -> None:
    outage.require("reopened")
    try:
        code = stack.itsmd.stop(timeout=SHUTDOWN_TIMEOUT)
        assert code == 0, f"itsmd exited with {code} on SIGTERM (-9: it ignored SIGTERM for {SHUTDOWN_TIMEOUT:g}s)"
        log = stack.itsmd.log_path.read_text(errors="replace")
        assert "Traceback" not in log, "itsmd logged a traceback during the run (see the log tail)"
    finally:
        stack.start_itsmd()  # the session's stack stays whole for whatever runs next
