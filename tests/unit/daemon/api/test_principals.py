"""Principals and roles on the real app: which role each route family needs, the legacy tokens' mapping, the
trusted proxy's headers, separation of duties, and that the recorded actor is the principal (a body's `by`
is kept as on_behalf_of)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from daemon.api.table import ROUTE_ROLES
from daemon.app import create_app
from daemon.clock import ManualClock
from daemon.config import load_config
from daemon.errors import ConfigError
from tests.unit.daemon.api.runbook_app import TERMINAL, call, write_setup
from tests.unit.daemon.configfiles import load_test_config
from tests.unit.daemon.ingest.conftest import Daemon, eventually, running

TOKENS = {
    "read": "read-legacy-t0ken-1",
    "write": "write-legacy-t0ken-1",
    "vic": "vic-viewer-t0ken",
    "rita": "rita-responder-t0ken",
    "alice": "alice-approver-t0ken",
    "bob": "bob-approver-t0ken",
    "ann": "ann-admin-t0ken",
}
NAMED = {"vic": "viewer", "rita": "responder", "alice": "approver", "bob": "approver", "ann": "admin"}
AUTH = "auth:\n  api:\n    read_tokens: [{token_file: read.token}]\n    write_tokens: [{token_file: write.token}]\n"
AUTH += "    tokens:\n" + "".join(
    f"      - {{name: {name}, role: {role}, token_file: {name}.token}}\n" for name, role in NAMED.items()
)
PROXY = """\
  proxy:
    trusted_cidrs: [{cidrs}]
    groups: {{sre: admin, oncall: responder, cab: approver}}
{default}"""


def runbooks(out: Path) -> dict[str, str]:
    return {
        "touch": f"""
            name: touch
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo touch >> {out}']}}
            """,
        "normal": f"""
            name: normal
            change: {{type: normal}}
            approval: {{required: true, timeout: 1h}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo normal >> {out}']}}
            """,
        "selfok": f"""
            name: selfok
            change: {{type: normal}}
            approval: {{required: true, timeout: 1h, allow_self_approval: true}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo selfok >> {out}']}}
            """,
        "cab": f"""
            name: cab
            change: {{type: normal}}
            approval: {{required: true, timeout: 1h, who: [group:cab, bob]}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo cab >> {out}']}}
            """,
    }


async def until(d: Daemon, run_id: int, *statuses: str) -> Any:
    """The run once its status is one of `statuses` (default: any terminal one), read with a viewer token."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen["run"] = (await call(d, "GET", f"/api/v1/runs/{run_id}", headers=as_("vic")))[1]
        return seen["run"]["status"] in (set(statuses) or TERMINAL)

    await eventually(reached, 20.0)
    return seen["run"]


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def setup(folder: Path, out: Path, extra: str = "") -> Path:
    config = write_setup(folder, runbooks(out), AUTH + extra)
    for name, token in TOKENS.items():
        (folder / f"{name}.token").write_text(token + "\n", encoding="utf-8")
    return config


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running(setup(tmp_path / "etc", tmp_path / "out.txt"), tmp_path / "data", ManualClock()) as d:
        yield d


async def fire(d: Daemon) -> int:
    now = d.clock.now()
    alert = {"labels": {"alertname": "Down", "service": "api", "severity": "critical"}}
    status, _ = await d.v2([{**alert, "startsAt": _iso(now), "endsAt": _iso(now + 600)}])
    assert status == 200
    (incident,) = (await call(d, "GET", "/api/v1/incidents", headers=as_("vic")))[1]["incidents"]
    return int(incident["id"])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


ROLE_ORDER = ("viewer", "responder", "approver", "admin")
CALLERS = {
    "read": "viewer",
    "vic": "viewer",
    "rita": "responder",
    "alice": "approver",
    "ann": "admin",
    "write": "admin",
}
CALLER_NAMES = {"read": "read-token-1", "write": "write-token-1"}
FAMILIES: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/incidents", None, "viewer"),
    ("GET", "/api/v1/runs", None, "viewer"),
    ("POST", "/api/v1/explain", {"labels": {"alertname": "Down"}}, "viewer"),
    ("POST", "/api/v1/incidents/99/acknowledge", {}, "responder"),
    ("POST", "/api/v1/incidents/99/notes", {"text": "x"}, "responder"),
    ("POST", "/api/v1/incidents/99/assign", {"assignee": "me"}, "responder"),
    ("POST", "/api/v1/problems/99/confirm", {}, "responder"),
    ("POST", "/api/v1/runs/99/approve", {}, "approver"),
    ("POST", "/api/v1/runs/99/reject", {}, "approver"),
    ("POST", "/api/v1/runs/99/cancel", {}, "admin"),
    ("POST", "/api/v1/runs", {"runbook": "touch", "dry_run": True}, "admin"),
    ("POST", "/api/v1/drills/nope/run", {}, "admin"),
    ("POST", "/-/reload", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "needed"), FAMILIES, ids=[f"{m} {p}" for m, p, _, _ in FAMILIES])
async def test_each_route_family_with_each_role(daemon: Daemon, method: str, path: str, body: Any, needed: str) -> None:
    for caller, role in CALLERS.items():
        status, answer = await call(daemon, method, path, body, headers=as_(caller))
        if ROLE_ORDER.index(role) >= ROLE_ORDER.index(needed):
            assert status not in (401, 403), (caller, answer)
        else:
            name = CALLER_NAMES.get(caller, caller)
            assert (status, answer["reason"]) == (403, "forbidden"), (caller, answer)
            assert answer["error"] == f"this endpoint needs role {needed} or higher; {name} has role {role}"
    status, answer = await call(daemon, method, path, body)
    assert (status, answer["reason"]) == (401, "unauthorized")
    assert f"needs a token of role {needed} or higher" in answer["error"]


def test_every_api_route_declares_its_role(tmp_path: Path) -> None:
    app = create_app(load_test_config(setup(tmp_path / "etc", tmp_path / "out.txt"), data_dir=tmp_path / "data"))
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        api_read = path.startswith("/api/v2") and route.method == "GET"  # POST /api/v2/alerts is ingest
        if route.method != "HEAD" and (path.startswith("/api/v1") or api_read or path == "/-/reload"):
            served.add((route.method, path))
    assert served == set(ROUTE_ROLES)


async def test_a_reload_is_logged_with_its_principal(daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.reload")
    status, _ = await call(daemon, "POST", "/-/reload", headers=as_("ann"))
    assert status == 200
    assert "reload requested by ann" in caplog.text


async def test_legacy_tokens_are_viewer_and_admin_principals(daemon: Daemon, tmp_path: Path) -> None:
    status, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "touch"}, headers=as_("write"))
    assert (status, run["requested_by"]) == (201, "write-token-1")
    status, answer = await call(daemon, "POST", "/api/v1/runs", {"runbook": "touch"}, headers=as_("read"))
    assert (status, answer["error"]) == (403, "this endpoint needs role admin or higher; read-token-1 has role viewer")


async def test_the_actor_is_the_principal_and_by_is_on_behalf_of(daemon: Daemon) -> None:
    incident = await fire(daemon)
    # Before principals, this note was recorded as the daemon's own: `by` decided the actor.
    status, body = await call(
        daemon, "POST", f"/api/v1/incidents/{incident}/notes", {"by": "itsmd", "text": "mine"}, headers=as_("rita")
    )
    assert status == 200, body
    assert body["timeline"][-1]["detail"] == {"by": "rita", "on_behalf_of": "itsmd", "text": "mine"}
    status, body = await call(daemon, "POST", f"/api/v1/incidents/{incident}/acknowledge", {}, headers=as_("rita"))
    assert status == 200, body
    assert body["timeline"][-1]["detail"] == {"by": "rita", "reason": ""}
    _, audit = await call(daemon, "GET", f"/api/v1/audit?record_type=incident&record_id={incident}", headers=as_("vic"))
    events = audit["events"]
    assert [(e["action"], e["actor"]) for e in events] == [
        ("opened", "itsmd"),
        ("note", "rita"),
        ("acknowledged", "rita"),
    ]
    assert events[1]["after"]["on_behalf_of"] == "itsmd"
    assert "on_behalf_of" not in events[2]["after"]

    status, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "touch", "by": "ticket-7"}, headers=as_("ann"))
    assert (status, run["requested_by"]) == (201, "ann")
    done = await until(daemon, run["id"])
    _, change = await call(daemon, "GET", f"/api/v1/changes/{done['change_id']}", headers=as_("vic"))
    assert change["requested_by"] == "ann"
    assert change["events"][1]["detail"] == {"by": "ann", "on_behalf_of": "ticket-7", "text": ""}


async def test_separation_of_duties(daemon: Daemon, tmp_path: Path) -> None:
    status, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "normal"}, headers=as_("ann"))
    assert status == 201, run
    await until(daemon, run["id"], "waiting_approval")
    status, refused = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=as_("ann"))
    assert (status, refused["reason"]) == (403, "separation_of_duties")
    assert refused["error"] == (
        "separation of duties: ann requested this change and may not approve it; "
        "set approval.allow_self_approval in the runbook to permit it"
    )
    body = {"by": "carol", "reason": "cab ok"}
    status, approved = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", body, headers=as_("alice"))
    assert status == 200, approved
    done = await until(daemon, run["id"])
    assert done["status"] == "succeeded"
    # The requester may withdraw (reject) its own change; `by` is whom the principal decides for.
    _, withdrawn = await call(daemon, "POST", "/api/v1/runs", {"runbook": "normal"}, headers=as_("ann"))
    await until(daemon, withdrawn["id"], "waiting_approval")
    body = {"by": "carol", "reason": "not now"}
    status, _ = await call(daemon, "POST", f"/api/v1/runs/{withdrawn['id']}/reject", body, headers=as_("ann"))
    assert status == 200
    assert (await until(daemon, withdrawn["id"]))["reason"] == "rejected by ann (on behalf of carol): not now"

    # The runbook may allow it; and an emergency change is not held to it.
    status, own = await call(daemon, "POST", "/api/v1/runs", {"runbook": "selfok"}, headers=as_("ann"))
    await until(daemon, own["id"], "waiting_approval")
    status, _ = await call(daemon, "POST", f"/api/v1/runs/{own['id']}/approve", {}, headers=as_("ann"))
    assert status == 200
    assert (await until(daemon, own["id"]))["status"] == "succeeded"
    emergency = {"runbook": "normal", "emergency": True, "reason": "site down"}
    status, urgent = await call(daemon, "POST", "/api/v1/runs", emergency, headers=as_("ann"))
    await until(daemon, urgent["id"], "waiting_approval")
    status, _ = await call(daemon, "POST", f"/api/v1/runs/{urgent['id']}/approve", {}, headers=as_("ann"))
    assert status == 200
    assert (await until(daemon, urgent["id"]))["status"] == "succeeded"
    assert (tmp_path / "out.txt").read_text().split() == ["normal", "selfok", "normal"]


async def test_approval_who_matches_names_and_groups(daemon: Daemon) -> None:
    status, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "cab"}, headers=as_("ann"))
    await until(daemon, run["id"], "waiting_approval")
    status, refused = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=as_("alice"))
    assert (status, refused["reason"]) == (403, "not_allowed")
    assert "only group:cab, bob" in refused["error"]
    status, _ = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=as_("bob"))
    assert status == 200
    assert (await until(daemon, run["id"]))["status"] == "succeeded"


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Daemon]:
    extra = PROXY.format(cidrs="127.0.0.0/8, '::1/128'", default="    default_role: viewer\n")
    config = setup(tmp_path / "etc", tmp_path / "out.txt", extra)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


def user(name: str, groups: str = "", email: str | None = None) -> dict[str, str]:
    headers = {"X-Forwarded-User": name, "X-Forwarded-Groups": groups}
    if email is not None:
        headers["X-Forwarded-Email"] = email
    return headers


async def test_the_trusted_proxy_names_the_user_and_groups_give_the_role(proxied: Daemon) -> None:
    incident = await fire(proxied)
    headers = user("pat", "oncall", "pat@example.org")
    status, body = await call(
        proxied, "POST", f"/api/v1/incidents/{incident}/notes", {"text": "on it"}, headers=headers
    )
    assert status == 200, body
    assert body["timeline"][-1]["detail"] == {"by": "pat", "text": "on it"}
    # The highest role among the groups counts; a user in no mapped group gets default_role.
    status, run = await call(proxied, "POST", "/api/v1/runs", {"runbook": "cab"}, headers=user("sam", "sre"))
    assert (status, run["requested_by"]) == (201, "sam")
    await until(proxied, run["id"], "waiting_approval")
    status, refused = await call(proxied, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=user("sam", "sre"))
    assert (status, refused["reason"]) == (403, "not_allowed")  # admin, but not in group cab
    status, answer = await call(proxied, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=user("pat", "oncall"))
    assert (status, answer["error"]) == (403, "this endpoint needs role approver or higher; pat has role responder")
    status, _ = await call(proxied, "POST", f"/api/v1/runs/{run['id']}/approve", {}, headers=user("pat", "oncall,cab"))
    assert status == 200
    status, answer = await call(
        proxied, "POST", f"/api/v1/incidents/{incident}/notes", {"text": "x"}, headers=user("u")
    )
    assert (status, answer["error"]) == (403, "this endpoint needs role responder or higher; u has role viewer")
    # Tokens still work through the proxy's address.
    status, _ = await call(proxied, "GET", "/api/v1/incidents", headers=as_("vic"))
    assert status == 200
    status, answer = await call(proxied, "GET", "/api/v1/incidents", headers=user("itsmd", "sre"))
    assert (status, answer["reason"]) == (403, "forbidden")
    twice = CIMultiDict([("X-Forwarded-User", "sam"), ("X-Forwarded-User", "pat")])
    status, answer = await call(proxied, "GET", "/api/v1/incidents", headers=twice)
    assert (status, answer["error"]) == (401, "the proxy sent X-Forwarded-User more than once")


async def test_proxy_headers_from_an_untrusted_peer_are_refused(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc", tmp_path / "out.txt", PROXY.format(cidrs="10.0.0.0/8", default=""))
    async with running(config, tmp_path / "data", ManualClock()) as d:
        for headers in (user("pat", "sre"), {**user("pat", "sre"), "X-Forwarded-For": "10.1.2.3"}):
            status, answer = await call(d, "GET", "/api/v1/incidents", headers={**headers, **as_("vic")})
            assert (status, answer["reason"]) == (403, "untrusted_proxy")
            assert "only accepted from the trusted proxy" in answer["error"]
            assert "127.0.0.1" in answer["error"]
        status, _ = await call(d, "GET", "/api/v1/incidents", headers={**as_("vic"), "X-Forwarded-For": "10.1.2.3"})
        assert status == 200


async def test_a_proxied_user_in_no_group_without_default_role_is_refused(tmp_path: Path) -> None:
    config = setup(tmp_path / "etc", tmp_path / "out.txt", PROXY.format(cidrs="127.0.0.0/8, '::1/128'", default=""))
    async with running(config, tmp_path / "data", ManualClock()) as d:
        status, answer = await call(d, "GET", "/api/v1/incidents", headers=user("pat", "visitors"))
        assert (status, answer["reason"]) == (403, "forbidden")
        assert "pat is in no group that auth.proxy.groups maps to a role" in answer["error"]


@pytest.mark.parametrize(
    ("auth", "says"),
    [
        ("  api:\n    tokens: [{name: itsmd, role: admin, token_file: a.token}]\n", "reserved"),
        ("  api:\n    tokens: [{name: Anonymous, role: viewer, token_file: a.token}]\n", "reserved"),
        (
            "  api:\n    read_tokens: [{token_file: a.token}]\n"
            "    tokens: [{name: read-token-1, role: admin, token_file: a.token}]\n",
            "two API tokens are named 'read-token-1'",
        ),
        ("  api:\n    tokens: [{name: x, role: root, token_file: a.token}]\n", "role"),
        ("  proxy: {trusted_cidrs: [10.0.0.1/8]}\n", "trusted_cidrs"),
        ("  proxy: {trusted_cidrs: [10.0.0.0/8], email_header: X-Forwarded-User}\n", "three different headers"),
    ],
)
def test_bad_auth_config_is_refused_naming_the_key(tmp_path: Path, auth: str, says: str) -> None:
    (tmp_path / "a.token").write_text("t0ken\n", encoding="utf-8")
    config = tmp_path / "itsmd.yaml"
    config.write_text("auth:\n" + auth, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert says in str(refused.value)


async def test_the_open_api_records_anonymous(tmp_path: Path) -> None:
    config = write_setup(tmp_path / "etc", runbooks(tmp_path / "out.txt"))
    async with running(config, tmp_path / "data", ManualClock()) as d:
        status, run = await call(d, "POST", "/api/v1/runs", {"runbook": "touch", "by": "itsmd"})
        assert (status, run["requested_by"]) == (201, "anonymous")
