from __future__ import annotations

import pytest

from daemon.drills.model import DrillOutcome
from daemon.model import IncidentStatus, ProblemStatus
from daemon.notify.publish.config import KINDS, PublishConfig
from daemon.notify.publish.states import Key, Links, Sources, State, current
from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.notify.publish.records import T0, drill, incident, problem, run

LINKS = Links("https://itsmd.example.org/")


def by_kind(states: dict[Key, State]) -> dict[str, list[State]]:
    out: dict[str, list[State]] = {}
    for s in states.values():
        out.setdefault(s.kind, []).append(s)
    return out


def test_an_open_incident_is_an_alert_with_stable_labels_and_a_console_link() -> None:
    i = incident()
    sources = Sources(incidents=lambda: [i], team_of=lambda s: "payments")
    (state,) = current(sources, PublishConfig(), LINKS, T0 + 10).values()
    assert state.kind == "ItsmdIncidentOpen"
    assert state.labels == {
        "alertname": "ItsmdIncidentOpen",
        "itsmd_publisher": "itsmd",
        "incident": "7",
        "service": "checkout",
        "priority": "P2",
        "team": "payments",
    }
    assert state.annotations["console_url"] == "https://itsmd.example.org/incidents/7"
    assert state.annotations["title"] == "checkout errors <b>high</b>"
    assert state.annotations["status"] == "open"
    assert state.starts_at == T0


def test_acknowledging_keeps_the_label_set_and_a_priority_raise_changes_it() -> None:
    i = incident()
    sources = Sources(incidents=lambda: [i])
    before = current(sources, PublishConfig(), LINKS, T0 + 10)
    i.status = IncidentStatus.ACKNOWLEDGED
    i.acknowledged_at = T0 + 5
    acked = current(sources, PublishConfig(), LINKS, T0 + 10)
    assert acked.keys() == before.keys()
    assert next(iter(acked.values())).annotations["status"] == "acknowledged"
    i.priority = "P1"
    raised = current(sources, PublishConfig(), LINKS, T0 + 10)
    assert raised.keys().isdisjoint(before.keys())


def test_the_assignee_is_an_annotation_and_the_incidents_team_its_label() -> None:
    i = incident()
    sources = Sources(incidents=lambda: [i], team_of=lambda s: "payments")
    before = current(sources, PublishConfig(), LINKS, T0 + 10)
    i.assignee = "alice"
    assigned = current(sources, PublishConfig(), LINKS, T0 + 10)
    (state,) = assigned.values()
    assert state.annotations["assignee"] == "alice"
    assert state.labels["team"] == "payments"
    assert assigned.keys() == before.keys()  # assigning keeps the alert
    i.team = "dba"  # handed to another team: routed to it, a new alert
    (moved,) = current(sources, PublishConfig(), LINKS, T0 + 10).values()
    assert moved.labels["team"] == "dba"


def test_a_resolved_incident_is_no_state() -> None:
    i = incident(status=IncidentStatus.RESOLVED)
    assert current(Sources(incidents=lambda: [i]), PublishConfig(), LINKS, T0 + 10) == {}


def test_sla_at_risk_follows_the_share_per_priority_then_breached() -> None:
    i = incident(respond=1000.0, resolve=10_000.0)
    sources = Sources(incidents=lambda: [i])
    config = PublishConfig(sla_at_risk={"default": 0.9, "P2": 0.5})
    assert "ItsmdSlaAtRisk" not in by_kind(current(sources, config, LINKS, T0 + 499))
    (risk,) = by_kind(current(sources, config, LINKS, T0 + 500))["ItsmdSlaAtRisk"]
    assert risk.labels["target"] == "respond"
    assert "50%" in risk.annotations["summary"]
    i.priority = "P3"  # default 0.9
    assert "ItsmdSlaAtRisk" not in by_kind(current(sources, config, LINKS, T0 + 500))
    i.sla.breaches.add("respond")
    kinds = by_kind(current(sources, config, LINKS, T0 + 1000))
    assert [s.labels["target"] for s in kinds["ItsmdSlaBreached"]] == ["respond"]
    assert "ItsmdSlaAtRisk" not in kinds


def test_an_acknowledged_incident_has_no_respond_state() -> None:
    i = incident(respond=100.0, resolve=100_000.0)
    i.sla.breaches.add("respond")
    i.status = IncidentStatus.ACKNOWLEDGED
    i.acknowledged_at = T0 + 200
    assert "ItsmdSlaBreached" not in by_kind(current(Sources(incidents=lambda: [i]), PublishConfig(), LINKS, T0 + 300))


def test_a_paused_clock_does_not_count() -> None:
    i = incident(respond=1000.0)
    i.sla.since = None
    i.sla.counted = 100.0
    kinds = by_kind(current(Sources(incidents=lambda: [i]), PublishConfig(), LINKS, T0 + 5000))
    assert "ItsmdSlaAtRisk" not in kinds


def test_runs_breakers_problems_known_errors_and_drills() -> None:
    i = incident()
    i.problem_id = 5
    known = problem(5, ProblemStatus.KNOWN_ERROR)
    sources = Sources(
        incidents=lambda: [i],
        runs=lambda: [
            run(3),
            run(4, RunStatus.FAILED, ended_at=T0 + 10),
            run(5, RunStatus.HELD),
            run(6, RunStatus.SUCCEEDED, ended_at=T0 + 10),
            run(8, RunStatus.ROLLBACK_FAILED, ended_at=T0 - 90_000),
        ],
        breakers_open=lambda: {"restart-checkout": True, "other": False},
        problems=lambda: [problem(2), known],
        drills=lambda: [drill(), drill(DrillOutcome.PASSED)],
    )
    kinds = by_kind(current(sources, PublishConfig(), LINKS, T0 + 20))
    (approval,) = kinds["ItsmdApprovalPending"]
    assert approval.labels["run"] == "3"
    assert approval.labels["approver"] == "role:approver"
    assert approval.annotations["console_url"] == "https://itsmd.example.org/runs/3"
    assert sorted(s.labels["run"] for s in kinds["ItsmdRunFailed"]) == ["4", "5"]  # run 8 ended over a day ago
    assert [s.labels["runbook"] for s in kinds["ItsmdBreakerOpen"]] == ["restart-checkout"]
    assert [s.labels["problem"] for s in kinds["ItsmdProblemCandidate"]] == ["2"]
    (matched,) = kinds["ItsmdKnownErrorMatched"]
    assert matched.labels["problem"] == "5"
    assert matched.annotations["workaround"] == "restart the pods"
    assert [s.labels["drill"] for s in kinds["ItsmdDrillFailed"]] == ["db-failover"]


def test_only_the_configured_kinds_are_published() -> None:
    i = incident(respond=10.0)
    i.sla.breaches.add("respond")
    config = PublishConfig(kinds=("ItsmdSlaBreached",))
    kinds = by_kind(current(Sources(incidents=lambda: [i]), config, LINKS, T0 + 20))
    assert list(kinds) == ["ItsmdSlaBreached"]


def test_without_an_external_url_links_are_paths() -> None:
    (state,) = current(Sources(incidents=lambda: [incident()]), PublishConfig(), Links(None), T0).values()
    assert state.annotations["console_url"] == "/incidents/7"


@pytest.mark.parametrize("shares", [{"P9": 0.5}, {"default": 1.0}, {"P1": 0.0}])
def test_bad_sla_shares_are_refused(shares: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PublishConfig(sla_at_risk=shares)


def test_every_kind_is_published_by_default() -> None:
    assert PublishConfig().kinds == KINDS


def test_a_failed_drill_run_is_the_drills_failure_not_a_failed_run() -> None:
    failed = run(9, RunStatus.FAILED, ended_at=T0)
    failed.mode = RunMode.DRILL
    held = run(10, RunStatus.HELD)
    held.mode = RunMode.DRILL
    kinds = by_kind(current(Sources(incidents=list, runs=lambda: [failed, held]), PublishConfig(), LINKS, T0 + 5))
    assert [s.labels["run"] for s in kinds["ItsmdRunFailed"]] == ["10"]  # held: a person must look either way
