"""Runbook files: schema errors and semantic problems with file:line: key, the shipped JSON Schema, the
shipped runbooks, `itsmd check` and `itsmd schema runbook`, and trigger matching."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.correlate.events import IncidentEvent, IncidentEventKind
from daemon.errors import ConfigError
from daemon.runbook import schema
from daemon.runbook.check import load_runbook, load_runbooks
from daemon.runbook.library import RunbookLibrary

REPO = Path(__file__).resolve().parents[4]


def _problems(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "rb.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_runbook(path)
    assert all(p.file == str(path) for p in caught.value.problems)
    return [(p.line, p.key, p.message) for p in caught.value.problems]


def test_the_committed_schema_is_the_generated_one() -> None:
    # Regenerate with: python -m daemon.runbook.schema > daemon/runbook/runbook.schema.json
    assert schema.shipped() == schema.render()
    doc = json.loads(schema.shipped())
    step = doc["$defs"]["Step"]
    assert {"exec", "http", "notify", "sleep", "approval"} <= set(step["properties"])
    assert {"required": ["exec"]} in step["oneOf"]


def test_itsmd_schema_runbook_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "runbook"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Runbook"


def test_the_shipped_runbooks_pass(capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(rb.spec.name for rb in load_runbooks(REPO / "runbooks"))
    assert names == ["disk-cleanup", "failover-drill", "restart-service"]
    assert main(["check", str(REPO / "runbooks"), str(REPO / "runbooks" / "restart-service.yaml")]) == 0
    assert "3 runbook(s): SUCCESS" in capsys.readouterr().out


def test_itsmd_check_reports_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - name: x\n    exec: {argv: [true]}\n    retires: 3\n", encoding="utf-8")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5: steps[0].retires: unknown key" in err
    assert f"{bad}:4: steps[0].exec.argv[0]: Input should be a valid string" in err


def test_a_step_needs_exactly_one_action(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        name: actions
        steps:
          - name: none
            timeout: 5s
          - name: two
            exec: {argv: [a]}
            sleep: {duration: 1s}
        """,
    )
    assert (
        4,
        "steps[0]",
        "needs one action: exec, http, notify, sleep, approval, promql, wait_until, silence",
    ) in found
    assert (6, "steps[1]", "has more than one action (exec, sleep); split it into steps") in found


def test_semantic_problems_name_their_line(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        """
        name: semantic
        params:
          host: {pattern: '^[a-z]+$', default: 'Bad'}
          loose: {pattern: '.*'}
          broken: {pattern: '([a-z'}
        change: {type: normal}
        concurrency: {key: '{{ incident.service }}'}
        trigger:
          on: [incident_opened]
          matchers: ['alertname~"x"']
        steps:
          - name: same
            exec: {argv: [echo, '{{ params.hots }}', '{{ secret }}', '{{ run.nope }}']}
          - name: same
            approval: {timeout: 1h}
            timeout: 5m
          - name: templ
            http: {url: 'http://x/{{ params.host', method: GET}
        """,
    )
    messages = {(line, key): msg for line, key, msg in found}
    assert messages[(4, "params.host.default")] == "default 'Bad' does not match the pattern"
    assert "accepts an empty value" in messages[(5, "params.loose.pattern")]
    assert messages[(6, "params.broken.pattern")].startswith("not a regular expression")
    assert "needs approval" in messages[(7, "change.type")]
    assert "may only use params (found incident)" in messages[(8, "concurrency.key")]
    assert "is not a matcher" in messages[(11, "trigger.matchers[0]")]
    assert messages[(14, "steps[0].exec.argv[1]")] == "params.hots is not a declared param (broken, host, loose)"
    assert "unknown variable 'secret'" in messages[(14, "steps[0].exec.argv[2]")]
    assert messages[(14, "steps[0].exec.argv[3]")].startswith("run.nope does not exist")
    assert "step name 'same' is already used by steps[0] at line 13" in messages[(15, "steps[1].name")]
    assert "shorter than the approval timeout" in messages[(17, "steps[1].timeout")]
    assert messages[(19, "steps[2].http.url")].startswith("template error")


def test_runbook_names_are_unique_across_files(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.yaml").write_text("name: same\nsteps:\n  - {name: x, sleep: {duration: 1s}}\n")
    with pytest.raises(ConfigError) as caught:
        load_runbooks(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.key) == (str(tmp_path / "b.yaml"), 1, "name")
    assert "also used by" in problem.message


def test_triggers_match_kind_service_priority_and_labels() -> None:
    library = RunbookLibrary.of(load_runbooks(REPO / "runbooks"))

    def names(kind: IncidentEventKind, priority: str = "P2", **labels: str) -> list[str]:
        event = IncidentEvent(kind, 1, "api", priority, 0.0, labels)
        return [rb.spec.name for rb in library.matching(event)]

    assert names(IncidentEventKind.OPENED, alertname="TargetDown", instance="h:1") == ["restart-service"]
    assert names(IncidentEventKind.OPENED, priority="P5", alertname="TargetDown") == []
    assert names(IncidentEventKind.RESOLVED, alertname="TargetDown") == []
    assert names(IncidentEventKind.REPEATED, alertname="DiskSpaceLow") == ["disk-cleanup"]
    assert names(IncidentEventKind.OPENED, alertname="DiskSpaceHuge") == []
