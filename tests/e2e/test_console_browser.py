"""The console in the real Chromium (Debian's, driven by Playwright), fed by the real Alertmanager.

Alerts are sent with the real amtool to the real Alertmanager, which notifies itsmd by its webhook; the
browser logs in with tokens of both roles and works the incidents as an operator would: live list, keyboard,
bulk actions, hostile labels, a viewer's refusals and a cross-site form. Screenshots go to the module's temporary
folder (printed with -s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from .client import request, wait_until
from .stack import HOST, Stack, free_ports, module_stack

pytestmark = pytest.mark.e2e

READ_TOKEN = "console-e2e-viewer-token-0001"  # noqa: S105 (test tokens)
WRITE_TOKEN = "console-e2e-admin-token-00001"  # noqa: S105
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIVE_WITHIN_MS = 20_000
"""amtool -> Alertmanager (group_wait 1s) -> webhook -> commit -> SSE -> page: seconds, on a busy CI machine."""


class ConsoleStack(Stack):
    """The e2e stack with API tokens, so the console asks for a login."""

    def write_configs(self) -> None:
        super().write_configs()
        (self.itsmd_dir / "read.token").write_text(READ_TOKEN)
        (self.itsmd_dir / "write.token").write_text(WRITE_TOKEN)
        config = yaml.safe_load(self.itsmd_config.read_text())
        config["auth"] = {
            "api": {"read_tokens": [{"token_file": "read.token"}], "write_tokens": [{"token_file": "write.token"}]}
        }
        self.itsmd_config.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    yield from module_stack(ConsoleStack, tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots in {folder}")
    return folder


def amtool_alert(stack: Stack, *labels: str, annotations: tuple[str, ...] = ()) -> None:
    argv = [stack.binaries.amtool, f"--alertmanager.url={stack.am_url}", "alert", "add", *labels]
    argv += [f"--annotation={a}" for a in annotations]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


DIALOGS: list[str] = []
"""Every alert(), confirm() or prompt() any page opened: hostile data must never open one."""


def _dialog(dialog: Dialog) -> None:
    DIALOGS.append(dialog.message)
    dialog.dismiss()


def logged_in(browser: Browser, base: str, token: str, path: str, *, dark: bool = False) -> Page:
    """A new browser context that asked for `path`, was sent to the login page, gave `token` and is back."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark" if dark else "light")
    page = context.new_page()
    page.on("dialog", _dialog)
    page.goto(f"{base}{path}")
    expect(page).to_have_url(re.compile(r".*/login\?next="))
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}{path}")
    return page


def open_page(browser: Browser, stack: Stack, token: str, *, dark: bool = False) -> Page:
    return logged_in(browser, stack.itsmd_url, token, "/incidents", dark=dark)


def incident_ids(stack: Stack) -> dict[str, int]:
    listed = get_json_auth(stack, "/api/v1/incidents?status=all")["incidents"]
    return {i["title"]: i["id"] for i in listed}


def get_json_auth(stack: Stack, path: str) -> Any:
    url = f"{stack.itsmd_url}{path}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {READ_TOKEN}"})  # noqa: S310 (http)
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (http to the test daemon)
        return json.loads(resp.read())


def test_an_operator_works_incidents_in_the_browser(stack: ConsoleStack, browser: Browser, shots: Path) -> None:
    page = open_page(browser, stack, WRITE_TOKEN)
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#live-state.on")).to_be_visible(timeout=10_000)

    # An alert sent through the real Alertmanager appears without a reload.
    amtool_alert(stack, "alertname=ConsoleDown", "service=flappy-api", "severity=critical", "instance=web-1")
    row = page.locator("#incidents tbody tr", has_text="ConsoleDown")
    expect(row).to_be_visible(timeout=LIVE_WITHIN_MS)
    assert page.evaluate("window.__notReloaded") is True
    expect(row.locator(".status")).to_have_text("open")

    # Acknowledge it from the list with the keyboard: j selects the newest row, a acknowledges it.
    page.keyboard.press("j")
    expect(row).to_have_class("open selected")
    page.keyboard.press("a")
    expect(page.locator("#incidents tbody tr", has_text="ConsoleDown").locator(".status")).to_have_text(
        "acknowledged", timeout=10_000
    )

    # Two more, then bulk-resolve both (their alerts still fire: the force box says so on purpose).
    for name in ("ConsoleDiskA", "ConsoleDiskB"):
        amtool_alert(stack, f"alertname={name}", "service=flappy-api", "severity=warning")
    for name in ("ConsoleDiskA", "ConsoleDiskB"):
        expect(page.locator("#incidents tbody tr", has_text=name)).to_be_visible(timeout=LIVE_WITHIN_MS)
    page.screenshot(path=str(shots / "incidents-light.png"), full_page=True)
    for name in ("ConsoleDiskA", "ConsoleDiskB"):
        page.locator("#incidents tbody tr", has_text=name).locator('input[name="id"]').check()
    page.check('input[name="force"]')
    page.click('button[value="resolve"]')
    expect(page.locator(".flash").first).to_have_text("2 resolved")
    ids = incident_ids(stack)
    for name in ("ConsoleDiskA", "ConsoleDiskB"):
        incident = get_json_auth(stack, f"/api/v1/incidents/{ids[next(t for t in ids if name in t)]}")
        assert incident["status"] == "resolved"
        assert incident["timeline"][-1]["detail"]["by"] == "write-token-1"

    # The incident page: SLA clocks, alerts, timeline; screenshots light and dark.
    page.locator("#incidents tbody tr", has_text="ConsoleDown").locator("td.title a").click()
    expect(page.locator("h1#incident")).to_contain_text("ConsoleDown")
    expect(page.locator(".clock").first).to_contain_text("respond")
    # Assign it to oneself from the incident page: on the page, in the record, on the timeline.
    page.locator("form.assign-me button[type=submit]").click()
    expect(page.locator("p.meta")).to_contain_text("assigned to write-token-1")
    down = get_json_auth(stack, f"/api/v1/incidents/{ids[next(t for t in ids if 'ConsoleDown' in t)]}")
    assert down["assignee"] == "write-token-1"
    assert any(t["kind"] == "assigned" for t in down["timeline"])
    page.screenshot(path=str(shots / "incident-light.png"), full_page=True)
    dark = open_page(browser, stack, WRITE_TOKEN, dark=True)
    dark.screenshot(path=str(shots / "incidents-dark.png"), full_page=True)
    dark.goto(page.url)
    dark.screenshot(path=str(shots / "incident-dark.png"), full_page=True)
    for shown, name in ((page, "light"), (dark, "dark")):
        shown.goto(f"{stack.itsmd_url}/services")
        expect(shown.locator("h1")).to_contain_text("Services")
        shown.screenshot(path=str(shots / f"services-{name}.png"), full_page=True)


def test_hostile_labels_render_as_text(stack: ConsoleStack, browser: Browser, shots: Path) -> None:
    page = open_page(browser, stack, WRITE_TOKEN)
    # Straight to the real Alertmanager's API: amtool's matcher syntax cannot carry a double quote.
    sent = request(
        "POST",
        f"{stack.am_url}/api/v2/alerts",
        [
            {
                "labels": {
                    "alertname": "ConsoleXss",
                    "service": "flappy-api",
                    "payload": '"><img src=x onerror=alert(1)><script>alert(2)</script>',
                },
                "annotations": {"summary": "<b onmouseover=alert(3)>hover</b>"},
                "generatorURL": "javascript:alert(4)",
            }
        ],
    )
    assert sent.status == 200, sent.text()
    row = page.locator("#incidents tbody tr", has_text="ConsoleXss")
    expect(row).to_be_visible(timeout=LIVE_WITHIN_MS)
    row.locator("td.title a").click()
    expect(page.locator("td.labels")).to_contain_text("<script>alert(2)</script>")
    page.locator("td.annotations").hover()
    assert page.locator("td.labels img, td.labels script, td.annotations b b").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    page.wait_for_timeout(500)  # any injected handler would have fired by now
    assert DIALOGS == []
    page.screenshot(path=str(shots / "xss.png"), full_page=True)


def test_a_viewer_sees_no_actions_and_is_refused_when_posting(stack: ConsoleStack, browser: Browser) -> None:
    amtool_alert(stack, "alertname=ConsoleViewer", "service=flappy-api", "severity=critical")
    wait_until(lambda: any("ConsoleViewer" in t for t in incident_ids(stack)), timeout=30, what="the incident")
    page = open_page(browser, stack, READ_TOKEN)
    expect(page.locator(".who")).to_contain_text("read-token-1")
    assert page.locator('button[value="acknowledge"]').count() == 0
    incident_id = next(i for t, i in incident_ids(stack).items() if "ConsoleViewer" in t)
    page.goto(f"{stack.itsmd_url}/incidents/{incident_id}")
    assert page.locator("section.actions").count() == 0
    csrf = page.locator('meta[name="itsmd-csrf"]').get_attribute("content")
    answer = page.request.post(
        f"{stack.itsmd_url}/incidents/{incident_id}/act",
        form={"csrf": csrf or "", "action": "acknowledge"},
        headers={"Accept": "application/json"},
    )
    assert answer.status == 403
    assert get_json_auth(stack, f"/api/v1/incidents/{incident_id}")["status"] == "open"
    page.keyboard.press("a")
    expect(page.locator(".flash").first).to_contain_text("role viewer")


class _EvilSite(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}"><input name="action" value="acknowledge"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_cross_site_form_post_is_refused(stack: ConsoleStack, browser: Browser) -> None:
    amtool_alert(stack, "alertname=ConsoleCsrf", "service=flappy-api", "severity=critical")
    wait_until(lambda: any("ConsoleCsrf" in t for t in incident_ids(stack)), timeout=30, what="the incident")
    incident_id = next(i for t, i in incident_ids(stack).items() if "ConsoleCsrf" in t)
    page = open_page(browser, stack, WRITE_TOKEN)  # logged in: the browser holds a session cookie
    (port,) = free_ports(1)
    handler = type("Evil", (_EvilSite,), {"target": f"{stack.itsmd_url}/incidents/{incident_id}/act"})
    # localhost, not 127.0.0.1: another site as far as the browser's cookies and Origin are concerned.
    server = ThreadingHTTPServer((HOST, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://localhost:{port}/")
        page.wait_for_url(f"{stack.itsmd_url}/**", timeout=10_000)
        expect(page.locator("h1")).to_contain_text("40")
    finally:
        server.shutdown()
        server.server_close()
    assert get_json_auth(stack, f"/api/v1/incidents/{incident_id}")["status"] == "open"
