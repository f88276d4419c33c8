"""Through the real Prometheus -> Alertmanager path: a flapping target keeps one incident, repeated outages
open a candidate problem, and SIGHUP reloads the rules (keeping the last good ones on errors).

Each test drives its own target, alert and service (see stack.py), so they do not disturb the outage
module. Every step waits for what itsmd reports, never for a fixed time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .client import get_json, request, wait_for
from .stack import (
    FLAP,
    FLAP_ALERT,
    FLAP_SERVICE,
    RECUR,
    RECUR_ALERT,
    RECUR_SERVICE,
    RECURRENCE_COUNT,
    Stack,
)

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 20.0  # one firing or resolve: ~1-3 s measured (Prometheus push, then the webhook)
Json = dict[str, Any]


def itsmd(stack: Stack, path: str) -> Any:
    stack.itsmd.check_alive()
    return get_json(f"{stack.itsmd_url}{path}")


def alert_of(stack: Stack, alertname: str) -> list[Json]:
    return [a for a in itsmd(stack, "/api/v1/alerts?status=all")["alerts"] if a["labels"]["alertname"] == alertname]


def incidents_of(stack: Stack, service: str) -> list[Json]:
    return [i for i in itsmd(stack, "/api/v1/incidents?status=all")["incidents"] if i["service"] == service]


def metrics(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = request("GET", f"{stack.itsmd_url}/metrics")
    assert resp.status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text())
        for s in family.samples
    }


def one_with_status(status: str) -> Callable[[list[Json]], bool]:
    return lambda found: len(found) == 1 and found[0]["status"] == status


def resolved_count(n: int) -> Callable[[list[Json]], bool]:
    return lambda found: len(found) == n and {i["status"] for i in found} == {"resolved"}


def outage(stack: Stack, target: str, alertname: str) -> None:
    """Take the target down until itsmd holds its alert firing, then up until itsmd holds it resolved."""
    for down, status in ((True, "firing"), (False, "resolved")):
        stack.set_target_down(down, target)
        wait_for(
            lambda: alert_of(stack, alertname),
            one_with_status(status),
            timeout=STEP_TIMEOUT,
            what=f"{alertname} {status} in itsmd",
            describe=lambda: str(alert_of(stack, alertname)),
        )


def test_a_flapping_target_keeps_one_incident(stack: Stack) -> None:
    for _ in range(3):
        outage(stack, FLAP, FLAP_ALERT)
    [alert] = alert_of(stack, FLAP_ALERT)
    assert alert["flapping"] is True
    [incident] = incidents_of(stack, FLAP_SERVICE)
    # The fourth state change (second resolve) made the alert flap: since then the incident stays open.
    assert (incident["status"], incident["flapping"], incident["flapping_alerts"]) == (
        "open",
        True,
        [alert["fingerprint"]],
    )
    assert incident["priority"] == "P1"  # high tier x severity critical
    kinds = [t["kind"] for t in itsmd(stack, f"/api/v1/incidents/{incident['id']}")["timeline"]]
    assert kinds.count("opened") == 1
    assert kinds.count("flapping_started") == 1
    assert kinds.count("resolved") == 1  # only the first outage's, before it was known to flap
    assert kinds.count("resolution_held") == 2
    assert metrics(stack)[("itsmd_alerts_flapping", frozenset())] >= 1


def test_repeated_outages_open_a_candidate_problem(stack: Stack) -> None:
    for n in range(1, RECURRENCE_COUNT + 1):
        outage(stack, RECUR, RECUR_ALERT)
        wait_for(
            lambda: incidents_of(stack, RECUR_SERVICE),
            resolved_count(n),
            timeout=STEP_TIMEOUT,
            what=f"{n} resolved incident(s) of {RECUR_SERVICE}",
            describe=lambda: str(incidents_of(stack, RECUR_SERVICE)),
        )
    found = incidents_of(stack, RECUR_SERVICE)
    [problem] = [p for p in itsmd(stack, "/api/v1/problems")["problems"] if p["service"] == RECUR_SERVICE]
    assert problem["status"] == "candidate"
    assert sorted(problem["incidents"]) == sorted(i["id"] for i in found)
    assert problem["signature"] == f'{{alertname="{RECUR_ALERT}",service="{RECUR_SERVICE}"}}'
    latest = max(found, key=lambda i: i["id"])
    assert latest["problem_id"] == problem["id"]
    samples = metrics(stack)
    assert samples[("itsmd_problems_opened_total", frozenset({("service", RECUR_SERVICE)}))] == 1
    assert samples[("itsmd_problems_open", frozenset({("service", RECUR_SERVICE), ("status", "candidate")}))] == 1
    assert samples[("itsmd_incidents_repeat_total", frozenset({("service", RECUR_SERVICE), ("priority", "P1")}))] == 1


def test_sighup_reloads_rules_and_keeps_the_last_good_ones(stack: Stack) -> None:
    def reload_state() -> tuple[float]:
        # A tuple: wait_for needs a truthy value, and 0.0 is what the failed reload shows.
        return (metrics(stack)[("itsmd_config_last_reload_successful", frozenset())],)

    pid = stack.itsmd.pid
    assert pid is not None
    try:
        stack.write_rules(services={"services": [{"name": "broken", "tier": "enormous"}]})
        os.kill(pid, signal.SIGHUP)
        wait_for(reload_state, lambda v: v == (0.0,), timeout=STEP_TIMEOUT, what="a failed reload")
        stack.itsmd.check_alive()
        assert "services.yaml:3: services[0].tier" in stack.itsmd.tail()
        explained = request(
            "POST", f"{stack.itsmd_url}/api/v1/explain", {"labels": {"alertname": "X", "service": FLAP_SERVICE}}
        ).json()
        assert explained["service"]["name"] == FLAP_SERVICE  # still the last good catalogue
    finally:
        stack.write_rules()
        os.kill(pid, signal.SIGHUP)
    wait_for(reload_state, lambda v: v == (1.0,), timeout=STEP_TIMEOUT, what="a successful reload")
