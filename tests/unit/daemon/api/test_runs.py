from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.clock import ManualClock
from tests.unit.daemon.api.runbook_app import call, until, write_setup
from tests.unit.daemon.ingest.conftest import Daemon, running, series


def runbooks(out: Path) -> dict[str, str]:
    return {
        "touch": f"""
            name: touch
            description: write a marker
            params:
              host: {{pattern: '^[a-z0-9.-]+$'}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo "$1" >> {out}', sh, "{{{{ params.host }}}}"]}}
            """,
        "gated": f"""
            name: gated
            approval: {{required: true, timeout: 1h, allow_self_approval: true}}  # the open API has one caller
            change: {{risk: high}}
            steps:
              - name: mark
                exec: {{argv: [sh, -c, 'echo gated >> {out}']}}
            """,
    }


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    config = write_setup(tmp_path / "etc", runbooks(tmp_path / "out.txt"))
    async with running(config, tmp_path / "data", ManualClock()) as d:
        yield d


async def test_start_by_hand_runs_it_and_records_a_standard_change(daemon: Daemon, tmp_path: Path) -> None:
    status, run = await call(
        daemon, "POST", "/api/v1/runs", {"runbook": "touch", "params": {"host": "web-1"}, "by": "ann", "reason": "t1"}
    )
    assert status == 201, run
    # Who acted is the principal (anonymous: the API is open); the body's `by` is kept as on_behalf_of.
    assert (run["runbook"], run["mode"], run["trigger"], run["requested_by"]) == (
        "touch",
        "live",
        "manual",
        "anonymous",
    )
    done = await until(daemon, run["id"])
    assert done["status"] == "succeeded", done["reason"]
    assert (tmp_path / "out.txt").read_text() == "web-1\n"
    (step,) = done["steps"]
    assert (step["name"], step["action"], step["phase"], step["status"], step["attempts"]) == (
        "mark",
        "exec",
        "do",
        "succeeded",
        1,
    )
    # Keyed with the data directory's key, so the digest of a short secret cannot be guessed without it.
    key = (tmp_path / "data" / "digest.key").read_bytes().strip()
    assert (tmp_path / "data" / "digest.key").stat().st_mode & 0o777 == 0o600
    assert step["output_digest"] == "hmac-sha256:" + hmac.new(key, b"", hashlib.sha256).hexdigest()
    assert step["plan"]["argv"][-1] == "web-1"
    assert done["change_id"] is not None

    change = await daemon.get_json(f"/api/v1/changes/{done['change_id']}")
    assert (change["type"], change["risk"], change["outcome"], change["run_id"]) == (
        "standard",
        "low",
        "successful",
        run["id"],
    )
    assert [e["kind"] for e in change["events"]][:2] == ["created", "note"]
    assert change["events"][1]["detail"] == {"by": "anonymous", "on_behalf_of": "ann", "text": "t1"}
    assert change["requested_by"] == "anonymous"
    listed = (await daemon.get_json("/api/v1/changes?status=closed"))["changes"]
    assert [c["id"] for c in listed] == [change["id"]]
    assert [r["id"] for r in (await daemon.get_json("/api/v1/runs?runbook=touch"))["runs"]] == [run["id"]]


async def test_dry_run_returns_the_plan_and_stores_nothing(daemon: Daemon, tmp_path: Path) -> None:
    status, answer = await call(
        daemon, "POST", "/api/v1/runs", {"runbook": "touch", "params": {"host": "web-1"}, "dry_run": True}
    )
    assert status == 200, answer
    assert answer["dry_run"] is True
    (step,) = answer["plan"]["steps"]
    assert step["action"] == "exec"
    assert step["plan"]["argv"][-1] == "web-1"
    assert (await daemon.get_json("/api/v1/runs"))["runs"] == []
    assert (await daemon.get_json("/api/v1/changes"))["changes"] == []
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize(
    ("body", "status", "reason", "says"),
    [
        ({"runbook": "nope"}, 404, None, "nope"),
        ({"runbook": "touch", "params": {"host": "web 1; rm -rf /"}}, 422, None, "host"),
        ({"runbook": "touch", "params": {"host": "a"}, "surprise": 1}, 400, "invalid_payload", "surprise"),
        ({"runbook": "touch", "params": {"host": 5}}, 400, "invalid_payload", "params.host"),
        ({"runbook": "touch", "params": {"host": "a"}, "emergency": True}, 400, "reason_required", "reason"),
        ({"runbook": "touch", "by": "Robert'); DROP"}, 400, "invalid_payload", "by"),
        ({"runbook": "touch", "params": {"host": "a"}, "service": "nope"}, 422, "unknown_service", "service: 'nope'"),
        ({"runbook": "touch", "params": {"host": "a"}, "incident_id": 99}, 422, "unknown_incident", "incident_id"),
        # Over SQLite's 64-bit integers: was a 500 from the store lookup (found by the OpenAPI fuzz test).
        ({"runbook": "nope", "incident_id": 2**63}, 400, "invalid_payload", "incident_id"),
    ],
)
async def test_refusals_are_4xx_json_naming_the_problem(
    daemon: Daemon, body: dict[str, object], status: int, reason: str | None, says: str
) -> None:
    got, answer = await call(daemon, "POST", "/api/v1/runs", body)
    assert got == status, answer
    assert answer["status"] == "error"
    if reason is not None:
        assert answer["reason"] == reason
    assert says in answer["error"]
    assert (await daemon.get_json("/api/v1/runs"))["runs"] == []


async def test_bad_json_and_oversized_bodies_are_refused(daemon: Daemon) -> None:
    async with daemon.client.post("/api/v1/runs", data=b"{not json") as resp:
        assert resp.status == 400
        assert (await resp.json())["reason"] == "invalid_json"
    async with daemon.client.post("/api/v1/runs", data=b"{" + b" " * 70_000 + b"}") as resp:
        assert resp.status == 413


async def test_approval_reject_then_409_naming_what_is_allowed(daemon: Daemon, tmp_path: Path) -> None:
    status, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "gated", "emergency": True, "reason": "down"})
    assert status == 201, run
    await until(daemon, run["id"], "waiting_approval")
    status, rejected = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/reject", {"by": "alice", "reason": "no"})
    assert status == 200, rejected
    done = await until(daemon, run["id"])
    assert done["status"] == "rejected"
    assert not (tmp_path / "out.txt").exists()

    status, conflict = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {"by": "alice"})
    assert status == 409
    assert conflict["reason"] == "invalid_transition"
    assert "allowed: none" in conflict["error"]

    change = await daemon.get_json(f"/api/v1/changes/{done['change_id']}")
    assert (change["type"], change["risk"], change["outcome"]) == ("emergency", "high", "rejected")


async def test_approve_lets_a_normal_change_run(daemon: Daemon, tmp_path: Path) -> None:
    _, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "gated"})
    await until(daemon, run["id"], "waiting_approval")
    status, _ = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/approve", {"by": "alice", "reason": "ok"})
    assert status == 200
    done = await until(daemon, run["id"])
    assert done["status"] == "succeeded"
    assert (tmp_path / "out.txt").read_text() == "gated\n"
    change = await daemon.get_json(f"/api/v1/changes/{done['change_id']}")
    assert (change["type"], change["outcome"]) == ("normal", "successful")
    # The approval is evidence on the run, on its change and in the audit trail: who (the principal; the
    # body's `by` only as on whose behalf), why, when.
    approval = done["approval"]
    assert (approval["decision"], approval["by"], approval["reason"]) == ("approved", "anonymous", "ok")
    assert approval["on_behalf_of"] == "alice"
    assert approval["decided_at"] is not None and approval["expires_at"] is not None
    assert change["approval"] == {
        "decision": "approved",
        "by": "anonymous",
        "reason": "ok",
        "at": approval["decided_at"],
        "on_behalf_of": "alice",
    }
    assert [e["detail"]["by"] for e in change["events"] if e["kind"] == "approval"] == ["anonymous"]
    audit = (await daemon.get_json(f"/api/v1/audit?record_type=run&record_id={run['id']}"))["events"]
    assert [(e["actor"], e["action"], e["at"]) for e in audit] == [("anonymous", "approved", approval["decided_at"])]
    assert audit[0]["after"]["on_behalf_of"] == "alice"


async def test_cancel_a_waiting_run_and_404_for_unknown_ids(daemon: Daemon) -> None:
    _, run = await call(daemon, "POST", "/api/v1/runs", {"runbook": "gated"})
    await until(daemon, run["id"], "waiting_approval")
    status, cancelled = await call(daemon, "POST", f"/api/v1/runs/{run['id']}/cancel", {"reason": "not today"})
    assert status == 200, cancelled
    assert (await until(daemon, run["id"]))["status"] == "cancelled"
    for path in ("/api/v1/runs/999/cancel", "/api/v1/runs/abc/approve"):
        status, missing = await call(daemon, "POST", path, {})
        assert status == 404, missing
    await daemon.get_json("/api/v1/runs/999", expect=404)
    await daemon.get_json("/api/v1/changes/999", expect=404)


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "outcome=maybe", "status=open&outcome=failed"])
async def test_bad_change_queries_are_400(daemon: Daemon, query: str) -> None:
    body = await daemon.get_json(f"/api/v1/changes?{query}", expect=400)
    assert body["reason"] == "invalid_query"


async def test_bad_run_query_is_400(daemon: Daemon) -> None:
    body = await daemon.get_json("/api/v1/runs?status=sideways", expect=400)
    assert "status must be one of" in body["error"]


async def test_the_openapi_document_lists_runs_and_changes(daemon: Daemon) -> None:
    document = await daemon.get_json("/api/v1/openapi.json")
    paths = document["paths"]
    for path in ("/api/v1/runs", "/api/v1/runs/{id}", "/api/v1/runs/{id}/approve", "/api/v1/changes/{id}"):
        assert path in paths
    body = paths["/api/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["runbook"]
    assert {"params", "dry_run", "emergency", "reason"} <= set(body["properties"])


async def test_a_run_that_left_memory_is_read_from_the_store(tmp_path: Path) -> None:
    config = write_setup(tmp_path / "etc", runbooks(tmp_path / "out.txt"), extra="")
    text = config.read_text().replace("runbooks:\n", "runbooks:\n  history: 1\n")
    config.write_text(text)
    async with running(config, tmp_path / "data", ManualClock()) as d:
        ids = []
        for host in ("a", "b", "c"):
            _, run = await call(d, "POST", "/api/v1/runs", {"runbook": "touch", "params": {"host": host}, "by": "ann"})
            ids.append(run["id"])
            await until(d, run["id"])
        assert [r["id"] for r in (await d.get_json("/api/v1/runs?status=all"))["runs"]] == ids[-1:]
        old = await d.get_json(f"/api/v1/runs/{ids[0]}")
        assert (old["id"], old["status"], old["params"]) == (ids[0], "succeeded", {"host": "a"})
        (step,) = old["steps"]
        assert (step["name"], step["status"], step["plan"]["argv"][-1]) == ("mark", "succeeded", "a")
        status, body = await call(d, "GET", "/api/v1/runs/999")
        assert status == 404, body


async def test_reload_picks_up_runbooks_and_keeps_the_last_good_ones(tmp_path: Path) -> None:
    config = write_setup(tmp_path / "etc", runbooks(tmp_path / "out.txt"))
    folder = tmp_path / "etc" / "runbooks"
    async with running(config, tmp_path / "data", ManualClock()) as d:
        (folder / "later.yaml").write_text("name: later\nsteps:\n  - {name: a, exec: {argv: ['true']}}\n")
        status, body = await call(d, "POST", "/-/reload")
        assert status == 200, body
        status, run = await call(d, "POST", "/api/v1/runs", {"runbook": "later", "params": {}, "by": "ann"})
        assert status == 201, run
        assert (await until(d, run["id"]))["status"] == "succeeded"
        metrics = await d.metrics()
        assert metrics[series("itsmd_runbook_runs_total", mode="live", outcome="succeeded", runbook="later")] == 1

        (folder / "later.yaml").write_text("name: later\nsteps:\n  - {name: a, exec: {argv: []}}\n")
        status, body = await call(d, "POST", "/-/reload")
        assert status == 400, body
        assert f"{folder / 'later.yaml'}:3" in body["error"]
        status, run = await call(d, "POST", "/api/v1/runs", {"runbook": "later", "params": {}, "by": "ann"})
        assert status == 201, run  # the last good version still runs
        assert (await d.metrics())[series("itsmd_config_last_reload_successful")] == 0


async def test_a_run_names_an_existing_incident_and_service_and_a_serviceless_one_is_labelled_none(
    daemon: Daemon,
) -> None:
    status, posted = await daemon.v2([{"labels": {"alertname": "Down", "service": "db", "instance": "a"}}])
    assert status == 200, posted
    (incident,) = await daemon.incidents()
    body = {"runbook": "touch", "params": {"host": "a"}, "incident_id": incident["id"], "service": "db"}
    status, run = await call(daemon, "POST", "/api/v1/runs", body)
    assert status == 201, run
    assert (run["incident_id"], run["service"]) == (incident["id"], "db")
    status, bare = await call(daemon, "POST", "/api/v1/runs", {"runbook": "touch", "params": {"host": "b"}})
    assert status == 201, bare
    await until(daemon, run["id"])
    await until(daemon, bare["id"])
    # The metrics and the report file a change made outside any service the same way: under `none`, which
    # is no catalogue service, so the default service's row of the report does not count it.
    metrics = await daemon.metrics()
    for service in ("none", "db"):
        changes = series("itsmd_changes_total", change_type="standard", outcome="successful", service=service)
        assert metrics[changes] == 1
    period = rfc3339_month(await daemon.get_json(f"/api/v1/runs/{bare['id']}"))
    report = await daemon.get_json(f"/api/v1/reports/{period}")
    by_service = {s["service"]: s["changes_by_outcome"] for s in report["services"]}
    assert by_service["db"] == {"successful": 1}
    assert by_service["unknown"] == {}
    # ... and lists it under "none" of its own, so no change is left out of the report.
    assert report["serviceless_changes"] == {"successful": 1}
    for fmt in ("md", "html"):
        async with daemon.client.get(f"/api/v1/reports/{period}?format={fmt}") as resp:
            assert "Changes outside any service" in await resp.text()


def rfc3339_month(run: dict[str, object]) -> str:
    return str(run["created_at"])[:7]
