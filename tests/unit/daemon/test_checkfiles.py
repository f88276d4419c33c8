"""`itsmd check`: every problem of every file in one pass, each as `file:line: key: message` at the line of the
offending key. Each case is a few small files, the arguments, and the exact problem lines expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon.cli import main
from tests.unit.daemon.configfiles import write

REPO = Path(__file__).resolve().parents[3]
DRILL_RUNBOOK = """\
name: failover
trigger: {on: [drill]}
steps:
  - name: fail-over
    exec: {argv: ['true']}
"""
PLAIN_RUNBOOK = """\
name: restart
steps:
  - name: restart
    exec: {argv: ['true']}
"""


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    args: tuple[str, ...]
    problems: tuple[str, ...]
    """Exact stderr lines but the FAILED summaries; {d} is the test's folder."""
    exit_code: int = 1
    notes: tuple[str, ...] = field(default=())
    """Lines that stdout must hold. Arguments are given as paths under {d}, so every file is named so."""


CASES = [
    Case(
        "a duplicate service names the second one's line and the first one",
        {
            "rules/services.yaml": """\
services:
  - name: checkout
    tier: high
  - name: api
    tier: low
  - name: db
    tier: medium
  - name: web
  - name: checkout
""",
        },
        ("rules/services.yaml",),
        (
            "{d}/rules/services.yaml:9: services[4].name: service 'checkout' is already listed as services[0] at "
            "line 2: merge the two or rename one",
        ),
    ),
    Case(
        "a missing cell of the priority matrix names its row's line and the cell",
        {
            "rules/priority.yaml": """\
matrix:
  high: {high: P1, medium: P2}
  medium: {high: P2, medium: P3, low: P4}
  low: {high: P3, medium: P4, low: P5}
""",
        },
        ("rules/priority.yaml",),
        (
            "{d}/rules/priority.yaml:2: matrix.high.low: is missing: give the priority (P1..P5) of impact high at "
            "urgency low",
        ),
    ),
    Case(
        "a missing row and a bad cell elsewhere, both",
        {
            "rules/priority.yaml": "matrix:\n  high: {high: P1, medium: P2, low: P9}\n"
            "  medium: {high: P2, medium: P3, low: P4}\n"
        },
        ("rules/priority.yaml",),
        (
            "{d}/rules/priority.yaml:2: matrix.high.low: Input should be 'P1', 'P2', 'P3', 'P4' or 'P5'",
            "{d}/rules/priority.yaml:1: matrix.low: impact low is missing: give its row (urgency high, medium and low)",
        ),
    ),
    Case(
        "cross-field checks are reported beside field errors",
        {
            "rules/services.yaml": """\
default_tier: huge
services:
  - name: checkout
  - name: api
    tier: urgent
  - name: checkout
pause_statuses: [open, closed]
""",
        },
        ("rules/services.yaml",),
        (
            "{d}/rules/services.yaml:1: default_tier: Input should be 'high', 'medium' or 'low'",
            "{d}/rules/services.yaml:5: services[1].tier: Input should be 'high', 'medium' or 'low'",
            "{d}/rules/services.yaml:6: services[2].name: service 'checkout' is already listed as services[0] at "
            "line 3: merge the two or rename one",
            "{d}/rules/services.yaml:7: pause_statuses[1]: 'closed' is not a status that can pause a clock: use open "
            "or acknowledged",
        ),
    ),
    Case(
        "one invalid step is one problem, not also 'steps: at least 1 item'",
        {"rb.yaml": "name: x\nsteps:\n  - name: one\n    exec: {argv: [echo]}\n    timeout: nope\n"},
        ("rb.yaml",),
        (
            "{d}/rb.yaml:5: steps[0].timeout: 'nope' is not a duration: use a number and a unit, like 30s, 5m, 1h30m "
            "or 2d",
        ),
    ),
    Case(
        "no 'Value error,' prefix, and an invalid list item does not make its list too short",
        {"rules/correlation.yaml": "group_by:\n  - alertname\n  - 'service name'\nrecurrence:\n  signature: [7]\n"},
        ("rules/correlation.yaml",),
        (
            "{d}/rules/correlation.yaml:3: group_by[1]: 'service name' is not a label name (letters, digits and _, "
            "not first a digit)",
            "{d}/rules/correlation.yaml:5: recurrence.signature[0]: Input should be a valid string",
        ),
    ),
    Case(
        "drills.yaml by itself: its own problems, not those of services.yaml beside it",
        {
            "rules/services.yaml": "services:\n  - name: checkout\n  - name: checkout\n",
            "rules/drills.yaml": """\
drills:
  - name: a
    service: checkout
    runbook: failover
    schedule: "61 * * * *"
    rto: 0s
    recovery: {verify: true}
""",
        },
        ("rules/drills.yaml",),
        (
            "{d}/rules/drills.yaml:5: drills[0].schedule: '61 * * * *' is not a valid cron schedule (or @every "
            "DURATION): Error validating expression '61': the last value (61) is higher than the maximum value (59)",
            "{d}/rules/drills.yaml:6: drills[0].rto: must be longer than 0s",
        ),
        notes=(
            "{d}/rules/drills.yaml: services of the drills not checked: {d}/rules/services.yaml has problems (check "
            "it)",
            "{d}/rules/drills.yaml: runbooks of the drills not checked: no config in this check has rules_dir "
            "{d}/rules",
        ),
    ),
    Case(
        "drills.yaml: services from beside it, runbooks from the config in the same run",
        {
            "itsmd.yaml": "rules_dir: rules\n",
            "rules/correlation.yaml": "{}\n",
            "rules/services.yaml": "services:\n  - name: checkout\n",
            "runbooks/failover.yaml": DRILL_RUNBOOK,
            "runbooks/restart.yaml": PLAIN_RUNBOOK,
            "rules/drills.yaml": """\
drills:
  - name: a
    service: checkout
    runbook: failover
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {verify: true}
  - name: b
    service: billing
    runbook: restart
    schedule: "@every 1m"
    rto: 5m
    recovery: {verify: true}
  - name: a
    service: checkout
    runbook: gone
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {promql: up, verify: true}
  - name: c
    service: checkout
    runbook: gone
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {verify: true}
""",
        },
        ("rules/drills.yaml", "itsmd.yaml"),
        (
            "{d}/rules/drills.yaml:19: drills[2].recovery: say how recovery is measured: either promql (a condition) "
            "or verify: true",
            "{d}/rules/drills.yaml:9: drills[1].service: unknown service 'billing': it is not in the catalogue "
            "(services.yaml)",
            "{d}/rules/drills.yaml:10: drills[1].runbook: runbook 'restart' is not a drill runbook: add drill to its "
            "trigger.on",
            "{d}/rules/drills.yaml:22: drills[3].runbook: no runbook named 'gone' in the runbooks folder",
        )
        * 2,
    ),
    Case(
        "a failing config still has its rules and runbooks checked",
        {
            "itsmd.yaml": "listen: nowhere\nrules_dir: rules\nrunbooks: {dir: books}\n",
            "rules/correlation.yaml": "reopen_window: 30x\n",
            "rules/priority.yaml": "default_urgency: now\n",
            "books/a.yaml": "name: A\nsteps:\n  - name: one\n    sleep: {duration: 1s}\n",
        },
        ("itsmd.yaml",),
        (
            "{d}/itsmd.yaml:1: listen: 'nowhere' is not HOST:PORT, like 127.0.0.1:9797",
            "{d}/rules/correlation.yaml:1: reopen_window: '30x' is not a duration: use a number and a unit, like 30s, "
            "5m, 1h30m or 2d",
            "{d}/rules/priority.yaml:1: default_urgency: Input should be 'high', 'medium' or 'low'",
            "{d}/books/a.yaml:1: name: String should match pattern '^[a-z0-9][a-z0-9_.-]{0,62}$'",
        ),
    ),
    Case(
        "correlation: names, windows and hysteresis at their keys, beside a field error",
        {
            "rules/correlation.yaml": """\
close_after: 10m
flapping: {enter: 3, leave: 5, window: nope}
rules:
  - name: default
  - name: a
    reopen_window: 1h
    group_by: ['bad label']
  - name: b
    reopen_window: 2h
  - name: b
""",
        },
        ("rules/correlation.yaml",),
        (
            "{d}/rules/correlation.yaml:2: flapping.window: 'nope' is not a duration: use a number and a unit, like "
            "30s, 5m, 1h30m or 2d",
            "{d}/rules/correlation.yaml:7: rules[1].group_by[0]: 'bad label' is not a label name (letters, digits "
            "and _, not first a digit)",
            "{d}/rules/correlation.yaml:2: flapping.leave: must be lower than enter (3), or an alert never stops "
            "flapping",
            "{d}/rules/correlation.yaml:4: rules[0].name: 'default' is the rule of alerts no rule matches: choose "
            "another name",
            "{d}/rules/correlation.yaml:10: rules[3].name: rule name 'b' is already used by rules[2] at line 8",
            "{d}/rules/correlation.yaml:1: close_after: 600s is shorter than reopen_window (1800s): closed incidents "
            "could not reopen; make close_after at least reopen_window",
            "{d}/rules/correlation.yaml:9: rules[2].reopen_window: 7200s is longer than close_after (600s): closed "
            "incidents could not reopen; shorten it or raise close_after",
        ),
    ),
    Case(
        "a check is not judged on the default of a key whose value is bad",
        {"rules/correlation.yaml": "close_after: 10m\nreopen_window: half an hour\n"},
        ("rules/correlation.yaml",),
        (
            "{d}/rules/correlation.yaml:2: reopen_window: 'half an hour' is not a duration: use a number and a unit, "
            "like 30s, 5m, 1h30m or 2d",
        ),
    ),
    Case(
        "runbook: a bad step does not hide the other steps' checks",
        {
            "rb.yaml": """\
name: x
params:
  host: {pattern: '.*'}
steps:
  - name: one
    exec: {argv: [echo, "{{ params.nope }}"]}
  - name: two
    exec: {argv: [true]}
  - name: one
    sleep: {duration: 1s}
change: {type: normal}
""",
        },
        ("rb.yaml",),
        (
            "{d}/rb.yaml:8: steps[1].exec.argv[0]: Input should be a valid string",
            "{d}/rb.yaml:3: params.host.pattern: the pattern accepts an empty value; anchor it and require a character",
            "{d}/rb.yaml:6: steps[0].exec.argv[1]: params.nope is not a declared param (host)",
            "{d}/rb.yaml:9: steps[2].name: step name 'one' is already used by steps[0] at line 5",
            "{d}/rb.yaml:11: change.type: a normal change needs approval: set approval.required: true (or type "
            "standard)",
        ),
    ),
    Case(
        "an unknown key, and what its model then lacks",
        {"itsmd.yaml": "auth:\n  api:\n    read_tokens:\n      - token: inline\n"},
        ("itsmd.yaml",),
        (
            "{d}/itsmd.yaml:4: auth.api.read_tokens[0].token: unknown key (check the spelling; see "
            "config.example.yaml)",
            "{d}/itsmd.yaml:4: auth.api.read_tokens[0]: set token_env or token_file",
        ),
    ),
    Case(
        "an invalid mapping key and a repeated list value, each at its line",
        {
            "rules/services.yaml": "targets:\n  P9: {respond: 1m}\n",
            "itsmd.yaml": "availability:\n  windows:\n    - 1d\n    - 90s\n    - 1d\n",
            "rules/correlation.yaml": "group_by: [alertname, alertname]\n",
        },
        ("rules/services.yaml", "itsmd.yaml", "rules/correlation.yaml"),
        (
            "{d}/rules/services.yaml:2: targets.P9: invalid key: Input should be 'P1', 'P2', 'P3', 'P4' or 'P5'",
            "{d}/itsmd.yaml:4: availability.windows[1]: windows are whole minutes, at least 1m",
            "{d}/itsmd.yaml:5: availability.windows[2]: is listed twice: each window once",
            "{d}/rules/correlation.yaml:1: group_by[1]: 'alertname' is listed twice",
        ),
    ),
    Case(
        "report schedule and time zone, each at its own key",
        {"itsmd.yaml": "reports:\n  schedule: '0 6 1 *'\n  time_zone: Mars/Base\n"},
        ("itsmd.yaml",),
        (
            "{d}/itsmd.yaml:3: reports.time_zone: unknown time zone 'Mars/Base': use an IANA name such as "
            "Europe/Berlin",
            "{d}/itsmd.yaml:2: reports.schedule: '0 6 1 *' is not a valid cron schedule: wanted 5 fields (minute "
            "hour day month weekday), got 4",
        ),
    ),
    Case(
        "a config's drills against its catalogue and runbooks",
        {
            "itsmd.yaml": "rules_dir: rules\n",
            "rules/correlation.yaml": "{}\n",
            "rules/services.yaml": "services:\n  - name: checkout\n  - {name: api, tier: huge}\n",
            "runbooks/restart.yaml": PLAIN_RUNBOOK,
            "rules/drills.yaml": """\
drills:
  - name: a
    service: api
    runbook: restart
    schedule: "0 3 * * 2"
    rto: 5m
    recovery: {verify: true}
""",
        },
        ("itsmd.yaml",),
        (
            "{d}/rules/services.yaml:3: services[1].tier: Input should be 'high', 'medium' or 'low'",
            "{d}/rules/drills.yaml:4: drills[0].runbook: runbook 'restart' is not a drill runbook: add drill to its "
            "trigger.on",
        ),
    ),
    Case(
        "valid files pass",
        {
            "itsmd.yaml": "rules_dir: rules\n",
            "rules/correlation.yaml": "{}\n",
            "rules/services.yaml": "services:\n  - name: checkout\n",
            "runbooks/failover.yaml": DRILL_RUNBOOK,
            "rules/drills.yaml": "drills:\n  - {name: a, service: checkout, runbook: failover, schedule: '@every 1m', "
            "rto: 5m, recovery: {verify: true}}\n",
        },
        ("itsmd.yaml", "rules/drills.yaml", "rules", "runbooks"),
        (),
        exit_code=0,
        notes=(
            "{d}/itsmd.yaml: rules from {d}/rules: SUCCESS",
            "{d}/itsmd.yaml: 1 runbook(s) from {d}/runbooks: SUCCESS",
            "{d}/itsmd.yaml: 1 drill(s) from {d}/rules/drills.yaml, references resolved: SUCCESS",
            "{d}/itsmd.yaml: SUCCESS",
            "{d}/rules/drills.yaml: SUCCESS",
            "{d}/rules: SUCCESS",
            "{d}/runbooks: 1 runbook(s): SUCCESS",
            "{d}/runbooks: SUCCESS",
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in case.files.items():
        write(tmp_path / name, text)
    monkeypatch.chdir(tmp_path / "rules" if (tmp_path / "rules").is_dir() else tmp_path)  # paths are the files'
    assert main(["check", *(str(tmp_path / arg) for arg in case.args)]) == case.exit_code
    out, err = capsys.readouterr()
    problems = [line for line in err.splitlines() if ": FAILED: " not in line]
    assert problems == [p.replace("{d}", str(tmp_path)) for p in case.problems]
    for note in case.notes:
        assert note.replace("{d}", str(tmp_path)) in out.splitlines()
    if case.exit_code:
        assert all(f"{tmp_path / arg}: SUCCESS" not in out.splitlines() for arg in case.args)


def test_one_run_reports_every_file_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = write(tmp_path / "rules" / "services.yaml", "services:\n  - name: a\n  - name: a\n")
    priority = write(tmp_path / "rules" / "priority.yaml", "matrix:\n  high: {high: P1}\n")
    runbook = write(tmp_path / "rb.yaml", "name: x\nsteps:\n  - name: one\n    sleep: {duration: forever}\n")
    config = write(tmp_path / "itsmd.yaml", "listen: 9797\n")
    good = write(tmp_path / "rules" / "correlation.yaml", "{}\n")
    assert main(["check", str(services), str(priority), str(runbook), str(config), str(good)]) == 1
    out, err = capsys.readouterr()
    assert [line.split(":")[0:2] for line in err.splitlines() if "FAILED" not in line] == [
        [str(services), "3"],
        [str(priority), "2"],
        [str(priority), "2"],
        [str(priority), "1"],
        [str(priority), "1"],
        [str(runbook), "4"],
        [str(config), "1"],
    ]
    for path, count in ((services, 1), (priority, 4), (runbook, 1), (config, 1)):
        assert f"{path}: FAILED: {count} problem(s)" in err.splitlines()
    assert out.splitlines() == [f"{good}: SUCCESS"]


def test_the_shipped_files_pass_as_ci_checks_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    args = [
        "config.example.yaml",
        "rules/services.yaml",
        "rules/correlation.yaml",
        "rules/priority.yaml",
        "rules/drills.yaml",
        "runbooks",
    ]
    assert main(["check", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for arg in args:
        assert f"{arg}: SUCCESS" in out.splitlines()
    assert f"config.example.yaml: 1 drill(s) from {REPO / 'rules' / 'drills.yaml'}, references resolved: SUCCESS" in (
        out.splitlines()
    )
