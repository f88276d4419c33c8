"""Alert data is data: labels that look like shell or template syntax are never executed or evaluated.
They arrive as one argv element, one environment value, one JSON string, exactly as sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.errors import ConfigError
from daemon.runbook.check import load_runbook
from daemon.runbook.engine import RunRefused
from daemon.runbook.model import RunMode, RunStatus
from tests.unit.daemon.runbook.harness import Harness, write_runbook

HOSTILE = [
    "$(touch {pwned})",
    "; touch {pwned}",
    "`touch {pwned}`",
    "| touch {pwned}",
    "&& touch {pwned} #",
    "{{{{ 7*7 }}}}",
    "{{% for x in range(3) %}}loop{{% endfor %}}",
    "{{{{ ''.__class__.__mro__ }}}}",
    "\n--help",
]


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[TestServer, list[bytes]]]:
    seen: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", record)
    server = TestServer(app)
    await server.start_server()
    yield server, seen
    await server.close()


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_labels_reach_commands_and_webhooks_as_literal_text(
    harness: Harness, tmp_path: Path, webhook: tuple[TestServer, list[bytes]], template: str
) -> None:
    server, seen = webhook
    pwned = tmp_path / "pwned"
    value = template.format(pwned=pwned)
    argv_file, env_file = tmp_path / "argv", tmp_path / "env"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: echo-label
        params:
          target: {{label: instance, pattern: '(?s)^.+$'}}
        steps:
          - name: argv
            exec:
              argv: [python3, -c, 'import sys; open(sys.argv[1], "w").write(repr(sys.argv[2:]))', {argv_file},
                     "{{{{ params.target }}}}"]
          - name: env
            exec:
              argv: [sh, -c, 'printf %s "$TARGET" > {env_file}']
              env: {{TARGET: "{{{{ params.target }}}}"}}
          - name: tell
            notify:
              url: "{server.make_url("/hook")}"
              body: {{text: "target {{{{ params.target }}}}"}}
        """,
    )
    engine = await harness.start([rb])
    run = engine.start(
        "echo-label",
        {"instance": value, "alertname": value},
        mode=RunMode.LIVE,
        trigger="incident_opened",
        requested_by="itsmd",
    )
    await harness.until(run)
    assert run.status is RunStatus.SUCCEEDED, run.reason
    assert not pwned.exists()
    assert argv_file.read_text() == repr([value])  # exactly one argument, unchanged
    assert env_file.read_text() == value
    assert json.loads(seen[0]) == {"text": f"target {value}"}
    assert "49" not in argv_file.read_text()


async def test_a_shell_step_may_not_take_params(tmp_path: Path) -> None:
    rb = write_runbook(
        tmp_path,
        """
        name: shell-with-params
        params:
          host: {pattern: '^[a-z]+$'}
        steps:
          - name: bad
            exec: {shell: true, argv: ['ping -c1 {{ params.host }}']}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_runbook(rb)
    (problem,) = caught.value.problems
    assert (problem.line, problem.key) == (7, "steps[0].exec.argv")
    assert "shell: true takes no template variables" in problem.message


async def test_a_value_outside_the_allowlist_never_runs(harness: Harness, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    rb = write_runbook(
        tmp_path / "rb",
        f"""
        name: strict
        params:
          host: {{label: instance, pattern: '^[a-z0-9.-]+$'}}
        steps:
          - name: run
            exec: {{argv: [touch, "{pwned}-{{{{ params.host }}}}"]}}
        """,
    )
    engine = await harness.start([rb])
    with pytest.raises(RunRefused) as refused:
        engine.start(
            "strict", {"instance": "a; rm -rf x"}, mode=RunMode.LIVE, trigger="incident_opened", requested_by="itsmd"
        )
    assert "param host='a; rm -rf x' does not match its pattern" in refused.value.message
    assert engine.runs() == []
