"""A runbook started, approved and followed in the real Chromium (Debian's, driven by Playwright).

itsmd runs as its own process with named tokens: ann (admin) starts a runbook that needs approval from its
form, is refused when she tries to approve her own change (separation of duties), bob (approver) approves it
in his browser, and ann's run page shows the steps progress to succeeded by itself, live from the event
stream, without a reload. Screenshots of the runbook form with its plan and of the run page, light and dark,
go to a temporary folder (printed with -s). The console must log in named tokens (`auth.api.tokens`).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from .procs import ManagedProcess
from .stack import free_ports, itsmd_process, wait_serving
from .test_console_browser import DIALOGS, browser, logged_in

pytestmark = pytest.mark.e2e
__all__ = ["browser"]  # the module-scoped Chromium fixture of the incident console's test

ANN = "console-runs-ann-admin-token-01"
BOB = "console-runs-bob-approver-tok-1"
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
RUNBOOK = f"""\
name: restart-web
description: restart the web tier, one host at a time
change: {{type: normal, risk: medium}}
approval: {{required: true, timeout: 1h, message: "restart {{{{ params.host }}}}?"}}
params:
  host: {{pattern: '[a-z][a-z0-9\\-]{{0,30}}', description: the host to restart}}
steps:
  - name: drain
    sleep: {{duration: 1s}}
  - name: restart
    exec: {{argv: [sh, -c, 'sleep 1; printf "%s\\n" "restarted $1" "$2"', sh, "{{{{ params.host }}}}", "{HOSTILE}"]}}
  - name: settle
    sleep: {{duration: 1s}}
"""
LIVE_WITHIN_MS = 20_000


@pytest.fixture(scope="module")
def itsmd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("console-runs")
    (root / "runbooks").mkdir()
    (root / "runbooks" / "restart-web.yaml").write_text(RUNBOOK)
    (root / "ann.token").write_text(ANN)
    (root / "bob.token").write_text(BOB)
    (root / "itsmd.yaml").write_text(
        "runbooks:\n  dir: runbooks\n"
        "auth:\n  api:\n    tokens:\n"
        "      - {name: ann, role: admin, token_file: ann.token}\n"
        "      - {name: bob, role: approver, token_file: bob.token}\n"
    )
    (port,) = free_ports(1)
    proc: ManagedProcess = itsmd_process(root / "itsmd.yaml", port, root / "data", root / "itsmd.log")
    base = f"http://127.0.0.1:{port}"
    proc.start()
    try:
        wait_serving(proc, base)
        yield base
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run-screenshots")
    print(f"screenshots in {folder}")
    return folder


def test_ann_starts_bob_approves_and_the_run_progresses_live(itsmd: str, browser: Browser, shots: Path) -> None:
    ann = logged_in(browser, itsmd, ANN, "/runbooks/restart-web")
    host = ann.locator('input[name="param.host"]')
    expect(host).to_have_attribute("pattern", r"[a-z][a-z0-9\-]{0,30}")
    # The browser checks the pattern first: a bad value is not even sent.
    host.fill("Web 1")
    ann.click('button[value="start"]')
    assert ann.evaluate("document.querySelector('input[name=\"param.host\"]').validity.patternMismatch") is True
    expect(ann).to_have_url(f"{itsmd}/runbooks/restart-web")

    # Dry run: the plan on the page, nothing started.
    host.fill("web-1")
    ann.click('button[value="dry_run"]')
    expect(ann.locator("#plan")).to_contain_text("nothing was executed")
    expect(ann.locator("#plan")).to_contain_text("restart web-1?")
    assert get_json_as(itsmd, "/api/v1/runs")["runs"] == []
    ann.screenshot(path=str(shots / "runbook-plan-light.png"), full_page=True)

    ann.locator('input[name="param.host"]').fill("web-1")
    ann.fill("#reason", "memory leak, see #12")
    ann.click('button[value="start"]')
    expect(ann).to_have_url(re.compile(rf"{re.escape(itsmd)}/runs/\d+$"))
    run_id = int(ann.url.rsplit("/", 1)[1])
    expect(ann.locator("#run-status")).to_have_text("waiting_approval", timeout=LIVE_WITHIN_MS)
    expect(ann.locator("#approval")).to_contain_text("restart web-1?")

    # Her own change: refused, and the page says by which rule.
    ann.fill('form.approve input[name="reason"]', "mine")
    ann.click('button[data-action="approve"]')
    expect(ann.locator(".flash").first).to_contain_text("separation of duties: ann requested this change")
    expect(ann.locator("#run-status")).to_have_text("waiting_approval")

    # From here on ann's page must change by itself.
    ann.evaluate("window.__notReloaded = true")
    expect(ann.locator("#live-state.on")).to_be_visible(timeout=10_000)
    ann.screenshot(path=str(shots / "run-waiting-light.png"), full_page=True)

    bob = logged_in(browser, itsmd, BOB, f"/runs/{run_id}")
    assert bob.locator('button[data-action="cancel"]').count() == 0  # cancel is admin's
    bob.fill('form.approve input[name="reason"]', "go ahead")
    bob.click('button[data-action="approve"]')
    expect(bob.locator(".flash").first).to_have_text(f"run {run_id} approved")

    steps = ann.locator("#steps li.step")
    expect(ann.locator("#run-status")).to_have_text("running", timeout=LIVE_WITHIN_MS)
    expect(steps.filter(has_text="drain").locator(".badge")).to_have_text(
        re.compile("running|succeeded"), timeout=LIVE_WITHIN_MS
    )
    expect(ann.locator("#run-status")).to_have_text("succeeded", timeout=LIVE_WITHIN_MS)
    expect(steps).to_have_count(3)
    for name in ("drain", "restart", "settle"):
        expect(steps.filter(has_text=name).locator(".badge")).to_have_text("succeeded")
    assert ann.evaluate("window.__notReloaded") is True
    expect(ann.locator("#approval")).to_contain_text("bob")
    expect(ann.locator("#approval")).to_contain_text("go ahead")

    # The command's output is text in the page, never markup.
    restart = steps.filter(has_text="restart")
    restart.locator("summary").click()
    expect(restart.locator("pre.output")).to_contain_text("<script>alert(2)</script>")
    assert ann.locator("#steps img, #steps script").count() == 0
    assert DIALOGS == []

    run = get_json_as(itsmd, f"/api/v1/runs/{run_id}")
    assert (run["status"], run["requested_by"], run["approval"]["by"]) == ("succeeded", "ann", "bob")
    ann.screenshot(path=str(shots / "run-light.png"), full_page=True)
    dark = logged_in(browser, itsmd, ANN, f"/runs/{run_id}", dark=True)
    dark.locator("#steps li.step", has_text="restart").locator("summary").click()
    dark.screenshot(path=str(shots / "run-dark.png"), full_page=True)
    dark.goto(f"{itsmd}/runbooks/restart-web")
    dark.screenshot(path=str(shots / "runbook-dark.png"), full_page=True)


def get_json_as(base: str, path: str) -> Any:
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {BOB}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (http to the test daemon)
        return json.loads(resp.read())
