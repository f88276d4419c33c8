"""The engine over a real store: steps, retries, timeouts, verify, rollback, approvals, policies."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from daemon.api.errors import status_of
from daemon.errors import RequestError
from daemon.runbook.config import RunbooksConfig
from daemon.runbook.engine import InvalidRunTransition, RunRefused
from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook


def _steps_of(h: Harness, run_id: int) -> list[tuple[str, str, str, int]]:
    return [
        (name, phase, status, attempts)
        for name, phase, status, attempts in h.stored(
            "SELECT name, phase, status, attempts FROM run_steps WHERE run_id = ? ORDER BY idx", run_id
        )
    ]


async def test_steps_run_in_order_and_are_journaled(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: two-steps
        params:
          host: {{pattern: '^[a-z0-9.-]+$'}}
        steps:
          - name: first
            exec: {{argv: [sh, -c, 'echo "first $1" >> {out}', sh, "{{{{ params.host }}}}"]}}
          - name: second
            exec: {{argv: [sh, -c, 'echo second >> {out}']}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("two-steps", {"host": "web-1"}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED, run.reason
    assert out.read_text() == "first web-1\nsecond\n"
    assert _steps_of(harness, run.id) == [("first", "do", "succeeded", 1), ("second", "do", "succeeded", 1)]
    stored = harness.stored("SELECT status, params, reason FROM runs WHERE id = ?", run.id)
    assert stored == [("succeeded", json.dumps({"host": "web-1"}), "all steps succeeded")]
    assert run.steps[0].output_digest and run.steps[0].plan["argv"][-1] == "web-1"


def _logging_runbook(
    folder: Path,
    log: Path,
    *,
    fail_verify_of: str = "",
    fail_rollback_of: str = "",
    on_failure: str = "rollback",
    extra: str = "",
) -> Path:
    steps = ""
    for name in ("one", "two", "three"):
        verify = "'false'" if name == fail_verify_of else "'true'"
        rollback = "false" if name == fail_rollback_of else f"echo undo-{name} >> {log}"
        steps += f"""
          - name: {name}
            exec: {{argv: [sh, -c, 'echo do-{name} >> {log}']}}
            verify: {{exec: {{argv: [{verify}]}}}}
            rollback: {{exec: {{argv: [sh, -c, '{rollback}']}}}}"""
    return write_runbook(folder, f"name: logged\non_failure: {on_failure}\n{extra}steps:{steps}\n")


async def test_a_failed_verify_rolls_back_the_completed_steps_in_reverse(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    engine = await harness.start([_logging_runbook(tmp_path / "rb", log, fail_verify_of="three")])
    run = engine.start("logged", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.ROLLED_BACK
    assert "step three failed: verify failed: exit 1" in run.reason
    # "three" ran and only its verify failed: its own rollback is owed first.
    assert log.read_text().split() == ["do-one", "do-two", "do-three", "undo-three", "undo-two", "undo-one"]
    assert _steps_of(harness, run.id) == [
        ("one", "do", "succeeded", 1),
        ("two", "do", "succeeded", 1),
        ("three", "do", "failed", 1),
        ("three", "rollback", "succeeded", 1),
        ("two", "rollback", "succeeded", 1),
        ("one", "rollback", "succeeded", 1),
    ]
    assert harness.stored("SELECT status FROM runs WHERE id = ?", run.id) == [("rolled_back",)]


async def test_a_failing_rollback_ends_rollback_failed_and_the_others_still_run(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    rb = _logging_runbook(tmp_path / "rb", log, fail_verify_of="three", fail_rollback_of="two")
    engine = await harness.start([rb])
    run = engine.start("logged", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.ROLLBACK_FAILED
    assert "rollback failed: two (exit 1" in run.reason
    assert log.read_text().split() == ["do-one", "do-two", "do-three", "undo-three", "undo-one"]


@pytest.mark.parametrize(
    ("limit", "then", "summary"),
    [("60s", "exit 3", "exit 3, expected 0"), ("1s", "sleep 30", "timed out after 1s")],
)
async def test_a_step_that_failed_after_it_started_gets_its_rollback(
    harness: Harness, tmp_path: Path, limit: str, then: str, summary: str
) -> None:
    log = tmp_path / "log"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: half-done
        steps:
          - name: first
            exec: {{argv: [sh, -c, 'echo first >> {log}']}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-first >> {log}']}}}}
          - name: second
            timeout: {limit}
            exec: {{argv: [sh, -c, 'echo did-it >> {log}; {then}']}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-second >> {log}']}}}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("half-done", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.ROLLED_BACK, run.reason
    assert f"step second failed: {summary}" in run.reason
    assert log.read_text().split() == ["first", "did-it", "undo-second", "undo-first"]


async def test_a_step_refused_before_it_started_gets_no_rollback(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: refused
        steps:
          - name: first
            exec: {{argv: [sh, -c, 'echo first >> {log}']}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-first >> {log}']}}}}
          - name: second
            exec: {{argv: [sh, -c, 'echo second >> {log}'], secret_env: {{TOKEN: not-configured}}}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo-second >> {log}']}}}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("refused", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.ROLLED_BACK, run.reason
    assert "secret 'not-configured' is not configured" in run.reason
    assert log.read_text().split() == ["first", "undo-first"]
    assert harness.stored("SELECT name, started FROM run_steps WHERE run_id = ? AND phase = 'do'", run.id) == [
        ("first", 1),
        ("second", 0),
    ]


async def test_on_failure_stop_and_continue(harness: Harness, tmp_path: Path) -> None:
    stop_log, cont_log = tmp_path / "stop", tmp_path / "cont"
    stop = _logging_runbook(tmp_path / "a", stop_log, fail_verify_of="two", on_failure="stop")
    cont = write_runbook(
        tmp_path / "b",
        _logging_runbook(tmp_path / "c", cont_log, fail_verify_of="two", on_failure="continue")
        .read_text()
        .replace("name: logged", "name: logged-on"),
    )
    engine = await harness.start([stop, cont])
    first = engine.start("logged", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    second = engine.start("logged-on", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(first)
    await harness.until(second)
    assert (first.status, stop_log.read_text().split()) == (RunStatus.FAILED, ["do-one", "do-two"])
    assert "stopped (on_failure: stop)" in first.reason
    assert (second.status, cont_log.read_text().split()) == (RunStatus.FAILED, ["do-one", "do-two", "do-three"])
    assert second.reason == "steps failed: two (on_failure: continue)"


async def test_retries_back_off_exponentially_on_the_engine_clock(harness: Harness, tmp_path: Path) -> None:
    count = tmp_path / "count"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: flaky
        steps:
          - name: third-time-lucky
            retries: 3
            backoff: 10s
            exec: {{argv: [sh, -c, 'echo x >> {count}; test $(wc -l < {count}) -ge 3']}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("flaky", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until_sleeping()
    harness.sleeper.advance(9.9)
    assert count.read_text().count("x") == 1  # the first backoff is 10s: not yet
    harness.sleeper.advance(0.1)
    await harness.until_sleeping()
    assert count.read_text().count("x") == 2
    harness.sleeper.advance(19.9)  # the second backoff doubles to 20s
    assert count.read_text().count("x") == 2
    harness.sleeper.advance(0.1)
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED
    assert _steps_of(harness, run.id) == [("third-time-lucky", "do", "succeeded", 3)]
    assert "[attempt 3]" in run.steps[0].output or run.steps[0].output == ""


def _state_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


async def test_a_step_timeout_kills_the_whole_process_group(harness: Harness, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: hangs
        on_failure: stop
        steps:
          - name: hang
            timeout: 300ms
            exec: {{argv: [sh, -c, 'sleep 30 & echo $! > {pids}; wait']}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("hangs", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.FAILED
    assert run.steps[0].summary == "timed out after 0s" or "timed out" in run.steps[0].summary
    child = int(pids.read_text())
    assert _state_of(child) in ("gone", "Z")  # the background child was killed with its parent


async def test_params_are_checked_against_their_patterns(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: strict
        params:
          host: {label: instance, pattern: '^[a-z0-9-]+$'}
          port: {pattern: '^[0-9]+$', default: '80'}
        steps:
          - name: noop
            exec: {argv: ["true"]}
        """,
    )
    engine = await harness.start([rb])
    with pytest.raises(RunRefused) as bad:
        engine.start("strict", {"host": "a b"}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    assert (status_of(bad.value), bad.value.reason) == (422, "bad_param")
    assert "param host='a b' does not match its pattern ^[a-z0-9-]+$" in bad.value.message
    with pytest.raises(RunRefused) as missing:
        engine.start("strict", {}, mode=RunMode.LIVE, trigger="incident_opened", requested_by="itsmd")
    assert "param host (from label 'instance') is required" in missing.value.message
    with pytest.raises(RunRefused) as unknown:
        engine.start("strict", {"host": "a", "hots": "b"}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    assert "has no param 'hots'" in unknown.value.message
    with pytest.raises(RunRefused) as no_such:
        engine.start("nope", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    assert status_of(no_such.value) == 404
    run = engine.start(
        "strict", {"instance": "web-1", "job": "x"}, mode=RunMode.LIVE, trigger="incident_opened", requested_by="itsmd"
    )
    assert run.params == {"host": "web-1", "port": "80"}
    await harness.until(run)
    assert harness.stored("SELECT count(*) FROM runs") == [(1,)]  # refused runs leave nothing behind


async def test_approval_step_approve_reject_and_timeout(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: gated
        steps:
          - name: prepare
            exec: {{argv: [sh, -c, 'echo prepare >> {log}']}}
            rollback: {{exec: {{argv: [sh, -c, 'echo undo >> {log}']}}}}
          - name: ask
            approval: {{who: [ann, ops], timeout: 30m, message: 'restart it?'}}
          - name: act
            exec: {{argv: [sh, -c, 'echo act >> {log}']}}
        """,
    )
    engine = await harness.start([rb])
    approved = engine.start("gated", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await harness.until(approved, RunStatus.WAITING_APPROVAL)
    assert approved.reason == "restart it? (approval by ann, ops, within 30m)"
    with pytest.raises(RequestError) as not_allowed:
        engine.approve(approved.id, "mallory", "me")
    assert status_of(not_allowed.value) == 403
    engine.approve(approved.id, "ann", "go")
    await harness.until(approved)
    assert approved.status is RunStatus.SUCCEEDED
    with pytest.raises(InvalidRunTransition) as late:
        engine.approve(approved.id, "ann", "again")
    assert status_of(late.value) == 409 and "allowed: none" in late.value.message

    rejected = engine.start("gated", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await harness.until(rejected, RunStatus.WAITING_APPROVAL)
    engine.reject(rejected.id, "ops", "not now")
    await harness.until(rejected)
    assert rejected.status is RunStatus.REJECTED
    assert "rejected by ops: not now" in rejected.reason

    timed_out = engine.start("gated", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await harness.until(timed_out, RunStatus.WAITING_APPROVAL)
    await harness.until_sleeping()
    harness.sleeper.advance(30 * 60)
    await harness.until(timed_out)
    assert timed_out.status is RunStatus.ROLLED_BACK
    assert "no decision within 30m" in timed_out.reason
    assert log.read_text().split() == ["prepare", "act", "prepare", "undo", "prepare", "undo"]


async def test_run_level_approval_and_cancel_when_the_incident_resolves(harness: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: normal-change
        change: {{type: normal, risk: high}}
        approval: {{required: true, timeout: 1h}}
        steps:
          - name: act
            exec: {{argv: [touch, {marker}]}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start(
        "normal-change", {}, mode=RunMode.LIVE, trigger="incident_opened", requested_by="itsmd", incident_id=7
    )
    await harness.until(run, RunStatus.WAITING_APPROVAL)
    assert engine.cancel_for_incident(8, "resolved") == []
    assert engine.cancel_for_incident(7, "incident 7 resolved") == [run]
    await harness.until(run)
    assert run.status is RunStatus.CANCELLED and run.reason == "cancelled by itsmd: incident 7 resolved"
    assert not marker.exists()
    with pytest.raises(InvalidRunTransition):
        engine.cancel(run.id, "ann", "")

    second = engine.start("normal-change", {}, mode=RunMode.LIVE, trigger="manual", requested_by="bob")
    await harness.until(second, RunStatus.WAITING_APPROVAL)
    engine.approve(second.id, "ann", "ok")
    await harness.until(second)
    assert second.status is RunStatus.SUCCEEDED and marker.exists()


async def test_separation_of_duties_and_who_by_role(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: cab-change
        change: {type: normal}
        approval: {required: true, who: ["role:approver"], timeout: 1h}
        steps:
          - name: act
            exec: {argv: ["true"]}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("cab-change", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run, RunStatus.WAITING_APPROVAL)
    approver = frozenset({"role:viewer", "role:responder", "role:approver"})
    with pytest.raises(RequestError) as own:
        engine.approve(run.id, "ann", "mine", identities=approver)
    assert (status_of(own.value), own.value.reason) == (403, "separation_of_duties")
    with pytest.raises(RequestError) as responder:
        engine.approve(run.id, "rita", "ok", identities=frozenset({"role:viewer", "role:responder"}))
    assert responder.value.reason == "not_allowed"
    engine.approve(run.id, "alice", "ok", on_behalf_of="cab", identities=approver)
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED


async def test_cancel_aborts_a_running_run(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: long
        steps:
          - name: wait
            sleep: {duration: 1h}
            timeout: 2h
        """,
    )
    engine = await harness.start([rb])
    run = engine.start("long", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until_sleeping()
    engine.cancel(run.id, "ann", "wrong target")
    await harness.until(run)
    assert run.status is RunStatus.ABORTED
    assert run.reason == "cancelled by ann: wrong target; completed steps were not rolled back"
    assert _steps_of(harness, run.id) == [("wait", "do", "failed", 1)]


async def test_dry_run_renders_everything_and_executes_nothing(harness: Harness, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: planned
        params:
          host: {{pattern: '^[a-z0-9-]+$'}}
        concurrency: {{key: "host/{{{{ params.host }}}}"}}
        steps:
          - name: touch
            exec: {{argv: [touch, "{marker}-{{{{ params.host }}}}"]}}
            rollback: {{http: {{method: DELETE, url: "http://{{{{ params.host }}}}.example/x"}}}}
          - name: ask
            approval: {{who: [ops]}}
        """,
    )
    engine = await harness.start([rb])
    plan = engine.plan("planned", {"host": "web-1"})
    assert plan["lock_key"] == "host/web-1"
    assert plan["steps"][0]["plan"]["argv"] == ["touch", f"{marker}-web-1"]
    assert plan["steps"][0]["rollback"]["plan"]["url"] == "http://web-1.example/x"
    assert [s["needs_approval"] for s in plan["steps"]] == [False, True]
    run = engine.start("planned", {"host": "web-1"}, mode=RunMode.DRY_RUN, trigger="manual", requested_by="ann")
    assert run.status is RunStatus.SUCCEEDED
    assert [s.status.value for s in run.steps] == ["planned", "planned"]
    await harness.until(run)
    assert not marker.with_name(f"{marker.name}-web-1").exists()
    assert engine.locks() == {}


async def test_output_is_redacted_capped_and_digested(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: chatty
        steps:
          - name: talk
            exec:
              argv: [sh, -c, 'echo "token=$TOKEN"; head -c 5000 /dev/zero | tr "\\0" a']
              secret_env: {TOKEN: deploy}
        """,
    )
    engine = await harness.start([rb], config=RunbooksConfig(max_output_bytes=100), secrets={"deploy": "s3cr3t-value"})
    run = engine.start("chatty", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED
    output, digest, plan = harness.stored("SELECT output, output_digest, plan FROM run_steps WHERE run_id = ?", run.id)[
        0
    ]
    assert output.startswith("token=<redacted>\naaaa")
    assert "s3cr3t" not in output and "s3cr3t" not in plan
    assert len(output.encode()) < 200 and "[cut at 100 of" in output
    whole = b"token=s3cr3t-value\n" + b"a" * 5000
    assert digest == "hmac-sha256:" + hmac.new(harness.digest_key, whole, hashlib.sha256).hexdigest()
    assert hashlib.sha256(whole).hexdigest() not in digest + json.dumps(run.steps[0].data)


async def test_a_run_needing_prometheus_is_refused_without_it(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path / "rb",
        """
        name: checks
        steps:
          - name: up
            promql: {query: 'up == 0', expect: {empty: true}}
        """,
    )
    engine = await harness.start([rb])
    with pytest.raises(RunRefused) as refused:
        engine.start("checks", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    assert refused.value.reason == "action_unavailable"
    assert refused.value.message == "step up uses promql, which needs `prometheus:` in the config"
    # A dry run still shows the plan, and says what a live run would be refused for.
    plan = engine.plan("checks", {})
    assert plan["unavailable"] == ["step up uses promql, which needs `prometheus:` in the config"]
    assert "up == 0" in str(plan)


async def test_no_new_runs_once_closing(harness: Harness, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path / "rb", "name: quick\nsteps:\n  - {name: a, exec: {argv: ['true']}}\n")
    engine = await harness.start([rb])
    await engine.close(0.1)
    with pytest.raises(RequestError) as refused:
        engine.start("quick", {}, mode=RunMode.LIVE, trigger="manual", requested_by="ann")
    assert (status_of(refused.value), refused.value.reason) == (503, "shutting_down")


def test_configured_secrets_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_DEPLOY", "from-env")
    (tmp_path / "chat.token").write_text("from-file\n")
    config = RunbooksConfig.model_validate(
        {"secrets": {"deploy": {"env": "ITSMD_TEST_DEPLOY"}, "chat": {"file": "chat.token"}}},
        context={"base_dir": tmp_path},
    )
    assert config.secret_values() == {"deploy": "from-env", "chat": "from-file"}
    assert "from-env" not in repr(config)
