"""POST /api/v1/incidents/{id}/assign and the assignee and team filters of GET /api/v1/incidents, on the real
app with named tokens: roles, `me`, unassigning, teams, 404/409/400, and a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import call
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, running

TOKENS = {"vic": ("viewer", "vic-viewer-t0ken"), "rita": ("responder", "rita-responder-t0ken")}
SERVICES = """
services:
  - name: api
    team: web
  - name: db
    team: dba
  - name: batch
"""
CORRELATION = "reopen_window: 0s\nclose_after: 1h\nflapping: {enabled: false}\n"


def setup(etc: Path) -> Path:
    write(etc / "rules" / "services.yaml", SERVICES)
    write(etc / "rules" / "correlation.yaml", CORRELATION)
    auth = "auth:\n  api:\n    tokens:\n" + "".join(
        f"      - {{name: {name}, role: {role}, token_file: {name}.token}}\n" for name, (role, _) in TOKENS.items()
    )
    for name, (_, token) in TOKENS.items():
        write(etc / f"{name}.token", token + "\n")
    return write(etc / "itsmd.yaml", "rules_dir: rules\n" + auth)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running(setup(tmp_path / "etc"), tmp_path / "data", ManualClock()) as d:
        yield d


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who][1]}"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def fire(d: Daemon, service: str, alertname: str = "Down") -> None:
    now = d.clock.now()
    labels = {"alertname": alertname, "service": service, "severity": "critical"}
    status, _ = await d.v2([{"labels": labels, "startsAt": iso(now), "endsAt": iso(now + 600)}])
    assert status == 200


async def assign(d: Daemon, incident: int | str, who: str = "rita", **body: Any) -> tuple[int, Any]:
    return await call(d, "POST", f"/api/v1/incidents/{incident}/assign", body, headers=as_(who))


async def listed(d: Daemon, query: str, who: str = "vic") -> list[int]:
    status, body = await call(d, "GET", f"/api/v1/incidents?status=all&{query}", headers=as_(who))
    assert status == 200, body
    return [i["id"] for i in body["incidents"]]


async def test_a_responder_assigns_a_viewer_may_not(daemon: Daemon) -> None:
    await fire(daemon, "api")
    status, body = await assign(daemon, 1, "vic", assignee="vic")
    assert (status, body["reason"]) == (403, "forbidden")
    assert body["error"] == "this endpoint needs role responder or higher; vic has role viewer"
    status, body = await call(daemon, "GET", "/api/v1/incidents/1", headers=as_("vic"))
    assert (body["assignee"], body["team"]) == (None, "web")

    status, body = await assign(daemon, 1, assignee="alice", by="pager", reason="on call")
    assert status == 200, body
    assert (body["assignee"], body["team"]) == ("alice", "web")
    assert body["timeline"][-1]["kind"] == "assigned"
    assert body["timeline"][-1]["detail"] == {
        "by": "rita",
        "on_behalf_of": "pager",
        "assignee": "alice",
        "team": "web",
        "was": {"assignee": None, "team": "web"},
        "reason": "on call",
    }
    status, audit = await call(daemon, "GET", "/api/v1/audit?record_type=incident&record_id=1", headers=as_("vic"))
    event = audit["events"][-1]
    assert (event["actor"], event["action"]) == ("rita", "assigned")
    assert event["after"] == {"assignee": "alice", "on_behalf_of": "pager"}


async def test_me_is_the_caller_null_unassigns_and_a_team_moves_it(daemon: Daemon) -> None:
    await fire(daemon, "api")
    status, body = await assign(daemon, 1, assignee="me")
    assert (status, body["assignee"]) == (200, "rita")
    status, body = await assign(daemon, 1, team="dba")
    assert (status, body["assignee"], body["team"]) == (200, "rita", "dba")
    status, body = await assign(daemon, 1, assignee=None)
    assert (status, body["assignee"], body["team"]) == (200, None, "dba")
    assert [t["kind"] for t in body["timeline"]][-3:] == ["assigned", "assigned", "unassigned"]


async def test_bad_assignments_are_400_with_the_reason(daemon: Daemon) -> None:
    await fire(daemon, "api")
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, 'give assignee (a name, "me", or null to unassign), team, or both'),
        ({"by": "pager"}, 'give assignee (a name, "me", or null to unassign), team, or both'),
        ({"team": "dbas"}, "team: no service in the catalogue has team 'dbas'; teams: dba, web"),
        ({"team": None}, "team: Value error, a team's name; leave team out to keep the team"),
        ({"assignee": "none"}, "assignee: 'none' is reserved"),
        ({"assignee": "itsmd"}, "assignee: 'itsmd' is reserved"),
        ({"assignee": "al\tice"}, "assignee: a principal's name"),
        ({"assignee": ""}, "assignee: String should have at least 1 character"),
        ({"assignee": "bob", "owner": "x"}, "owner: Extra inputs are not permitted"),
    ]
    for body, says in cases:
        status, answer = await assign(daemon, 1, **body)
        assert (status, answer["reason"]) == (400, "invalid_body"), (body, answer)
        assert answer["error"].startswith(says), (body, answer)
    status, incident = await call(daemon, "GET", "/api/v1/incidents/1", headers=as_("vic"))
    assert (incident["assignee"], incident["team"]) == (None, "web")
    assert "assigned" not in [t["kind"] for t in incident["timeline"]]


async def test_unknown_is_404_and_closed_is_409(daemon: Daemon) -> None:
    status, body = await assign(daemon, 99, assignee="me")
    assert (status, body["reason"]) == (404, "not_found")
    status, body = await assign(daemon, "x", assignee="me")
    assert status == 404
    await fire(daemon, "api")
    status, body = await call(daemon, "POST", "/api/v1/incidents/1/resolve", {"force": True}, headers=as_("rita"))
    assert status == 200, body
    status, body = await call(daemon, "POST", "/api/v1/incidents/1/close", {}, headers=as_("rita"))
    assert status == 200, body
    status, body = await assign(daemon, 1, assignee="me")
    assert (status, body["reason"]) == (409, "invalid_transition")
    assert body["error"] == "incident 1 is closed; allowed: none"


async def test_lists_filter_by_assignee_and_team(daemon: Daemon) -> None:
    await fire(daemon, "api", "A")
    await fire(daemon, "db", "B")
    await fire(daemon, "batch", "C")
    await fire(daemon, "api", "D")
    assert (await assign(daemon, 1, assignee="me"))[0] == 200
    assert (await assign(daemon, 2, assignee="alice"))[0] == 200
    assert (await assign(daemon, 4, team="dba"))[0] == 200
    assert await listed(daemon, "assignee=rita") == [1]
    assert await listed(daemon, "assignee=me", who="rita") == [1]
    assert await listed(daemon, "assignee=me", who="vic") == []
    assert await listed(daemon, "assignee=none") == [4, 3]
    assert await listed(daemon, "team=web") == [1]
    assert await listed(daemon, "team=dba") == [4, 2]
    assert await listed(daemon, "team=dba&assignee=none") == [4]
    assert await listed(daemon, "team=nobody") == []
    status, body = await call(daemon, "GET", "/api/v1/incidents?assignee=" + "x" * 201, headers=as_("vic"))
    assert (status, body["reason"]) == (400, "invalid_query")


async def test_the_assignment_survives_a_restart(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc")
    clock = ManualClock()
    async with running(config, tmp_path / "data", clock) as d:
        await fire(d, "api")
        assert (await assign(d, 1, assignee="alice", team="dba"))[0] == 200
    async with running(config, tmp_path / "data", clock) as d:
        status, body = await call(d, "GET", "/api/v1/incidents/1", headers=as_("vic"))
        assert (body["assignee"], body["team"]) == ("alice", "dba")
        status, body = await assign(d, 1, assignee=None)
        assert (status, body["assignee"], body["team"]) == (200, None, "dba")
        status, audit = await call(d, "GET", "/api/v1/audit?record_type=incident&record_id=1", headers=as_("vic"))
        assert [e["action"] for e in audit["events"]][-2:] == ["assigned", "unassigned"]


async def test_the_openapi_document_describes_assign(daemon: Daemon) -> None:
    status, document = await call(daemon, "GET", "/api/v1/openapi.json", headers=as_("vic"))
    assert status == 200
    operation = document["paths"]["/api/v1/incidents/{id}/assign"]["post"]
    assert "me" in operation["summary"]
    assert {"400", "404", "409"} <= set(operation["responses"])
    schema = document["components"]["schemas"]["AssignBody"]
    assert {"assignee", "team", "by", "reason"} == set(schema["properties"])
    names = {p["name"] for p in document["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert {"assignee", "team"} <= names
