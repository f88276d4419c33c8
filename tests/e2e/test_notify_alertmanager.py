"""itsmd's states as alerts in the real Alertmanager 0.25, delivered by its real receivers.

An outage of the flappy target opens an incident; itsmd publishes ItsmdIncidentOpen to the real Alertmanager,
which routes it (by the itsmd_publisher label, away from itsmd's own webhook) to a webhook receiver, a Slack
receiver whose api_url is a local server, and an email receiver pointed at a real local SMTP server (aiosmtpd).
Each message carries the incident's title and console link; when the outage ends the resolve arrives too. A
run of an approval-gated runbook is ItsmdApprovalPending until it is approved.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from .client import get_json, post_json, request, wait_for
from .stack import HOST, SERVICE, Binaries, Stack, free_ports, module_stack

pytestmark = pytest.mark.e2e
CONSOLE = "https://itsmd.example.org"
DELIVERY_TIMEOUT = 60.0
TEAM = "web"
RUNBOOK = "restart-web"


@dataclass
class Received:
    """What the receivers got, shared with the test thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    slack: list[dict[str, Any]] = field(default_factory=list)
    mails: list[email.message.EmailMessage] = field(default_factory=list)

    def copy(self, kind: str) -> list[Any]:
        with self.lock:
            return list(getattr(self, kind))


class Receivers:
    """A local aiohttp server (webhook and Slack paths) in a thread of its own, and a real SMTP server."""

    def __init__(self) -> None:
        self.http_port, self.smtp_port = free_ports(2)
        self.got = Received()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._smtp = Controller(_MailHandler(self.got), hostname=HOST, port=self.smtp_port)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        self._smtp.start()

    def stop(self) -> None:
        self._smtp.stop()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._record("webhooks"))
        app.router.add_post("/slack", self._record("slack"))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.http_port).start()

    def _record(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = await request.json()
            with self.got.lock:
                getattr(self.got, kind).append(body)
            return web.Response(text="ok")

        return handler


class _MailHandler:
    def __init__(self, got: Received) -> None:
        self._got = got

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._got.lock:
            self._got.mails.append(message)
        return "250 OK"


def _alertmanager_config(itsmd_url: str, receivers: Receivers) -> dict[str, Any]:
    """itsmd's own alerts (label itsmd_publisher) go to people; everything else to itsmd's webhook."""
    http = f"http://{HOST}:{receivers.http_port}"
    link = "{{ range .Alerts }}{{ .Annotations.title }} {{ .Annotations.console_url }}\n{{ end }}"
    return {
        "global": {
            "smtp_smarthost": f"{HOST}:{receivers.smtp_port}",
            "smtp_from": "alertmanager@example.org",
            "smtp_require_tls": False,
        },
        "route": {
            "receiver": "itsmd",
            "group_by": ["alertname", "service"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "10s",
            "routes": [
                {
                    "matchers": ['itsmd_publisher=~".+"'],
                    "receiver": "people",
                    "group_by": ["alertname", "incident", "run"],
                    "repeat_interval": "1h",
                }
            ],
        },
        "receivers": [
            {
                "name": "itsmd",
                "webhook_configs": [{"url": f"{itsmd_url}/webhook/alertmanager", "send_resolved": True}],
            },
            {
                "name": "people",
                "webhook_configs": [{"url": f"{http}/hook", "send_resolved": True}],
                "slack_configs": [
                    {
                        "api_url": f"{http}/slack",
                        "channel": "#oncall",
                        "send_resolved": True,
                        "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                        "title_link": "{{ (index .Alerts 0).Annotations.console_url }}",
                        "text": link,
                    }
                ],
                "email_configs": [
                    {
                        "to": "oncall@example.org",
                        "send_resolved": True,
                        "headers": {"Subject": "[{{ .Status }}] {{ .CommonAnnotations.title }}"},
                        "text": link,
                        "html": "<p>" + link + "</p>",
                    }
                ],
            },
        ],
    }


def _runbook() -> str:
    return f"""
name: {RUNBOOK}
description: restart the web tier, after a person said yes
approval: {{required: true, timeout: 1h, message: 'restart web?', allow_self_approval: true}}
steps:
  - name: restart
    exec: {{argv: ["true"]}}
"""


class NotifyStack(Stack):
    def __init__(self, root: Path, binaries: Binaries) -> None:
        super().__init__(root, binaries)
        self.receivers = Receivers()

    def start(self) -> None:
        self.receivers.start()
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.receivers.stop()

    def write_configs(self) -> None:
        super().write_configs()
        (self.etc / "alertmanager.yml").write_text(
            yaml.safe_dump(_alertmanager_config(self.itsmd_url, self.receivers), sort_keys=False)
        )
        config = yaml.safe_load(self.itsmd_config.read_text())
        config["runbooks"] = {"dir": "runbooks"}
        config["notify"] = {
            "external_url": CONSOLE,
            "alertmanagers": [{"url": self.am_url}],
            "publish": {"interval": "1s"},
        }
        self.itsmd_config.write_text(yaml.safe_dump(config))
        folder = self.itsmd_dir / "runbooks"
        folder.mkdir(exist_ok=True)
        (folder / f"{RUNBOOK}.yaml").write_text(_runbook())

    def write_rules(self, services: object = None) -> None:
        super().write_rules(services or {"services": [{"name": SERVICE, "tier": "high", "team": TEAM}]})


@pytest.fixture(scope="module")
def nstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyStack]:
    yield from module_stack(NotifyStack, tmp_path_factory.mktemp("e2e-notify"))


def _ours(payloads: list[dict[str, Any]], alertname: str, status: str) -> list[dict[str, Any]]:
    return [
        a
        for p in payloads
        for a in p.get("alerts", [])
        if a["labels"].get("alertname") == alertname and a["status"] == status
    ]


def _slack_texts(nstack: NotifyStack, status: str) -> list[str]:
    out = []
    for body in nstack.receivers.got.copy("slack"):
        for attachment in body.get("attachments", []):
            if attachment.get("title", "").startswith(f"[{status.upper()}] ItsmdIncidentOpen"):
                out.append(json.dumps(attachment))
    return out


def _mails(nstack: NotifyStack, status: str) -> list[str]:
    out = []
    for mail in nstack.receivers.got.copy("mails"):
        if str(mail["Subject"]).startswith(f"[{status}]"):
            part = mail.get_body(preferencelist=("plain",))
            out.append(part.get_content() if part is not None else "")
    return out


def _itsmd(nstack: NotifyStack, path: str) -> Any:
    nstack.itsmd.check_alive()
    return get_json(f"{nstack.itsmd_url}{path}")


def test_an_incident_reaches_webhook_slack_and_email_and_so_does_its_resolve(nstack: NotifyStack) -> None:
    nstack.set_target_down(True)
    (incident,) = wait_for(
        lambda: _itsmd(nstack, "/api/v1/incidents?status=open")["incidents"],
        bool,
        timeout=DELIVERY_TIMEOUT,
        what="the outage to open an incident",
        describe=nstack.itsmd.tail,
    )
    link = f"{CONSOLE}/incidents/{incident['id']}"

    def delivered(status: str) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        return (
            _ours(nstack.receivers.got.copy("webhooks"), "ItsmdIncidentOpen", status),
            _slack_texts(nstack, status),
            _mails(nstack, status),
        )

    hooks, slacks, mails = wait_for(
        lambda: delivered("firing"),
        all,
        timeout=DELIVERY_TIMEOUT,
        what="ItsmdIncidentOpen to reach the webhook, Slack and email receivers",
        describe=nstack.alertmanager.tail,
    )
    alert = hooks[0]
    assert alert["labels"]["incident"] == str(incident["id"])
    assert alert["labels"]["service"] == SERVICE
    assert alert["labels"]["team"] == TEAM
    assert alert["labels"]["itsmd_publisher"] == "itsmd"
    assert alert["annotations"]["title"] == incident["title"]
    assert alert["annotations"]["console_url"] == link
    assert alert["generatorURL"] == link
    assert link in slacks[0] and incident["title"] in slacks[0]
    assert link in mails[0] and incident["title"] in mails[0]
    # Routed apart: none of itsmd's own alerts came back to its webhook, and none became an incident.
    metrics = request("GET", f"{nstack.itsmd_url}/metrics").text()
    assert 'itsmd_alerts_looped_back_total{source="alertmanager"} 0.0' in metrics
    assert [i["id"] for i in _itsmd(nstack, "/api/v1/incidents?status=all")["incidents"]] == [incident["id"]]

    nstack.set_target_down(False)
    hooks, slacks, mails = wait_for(
        lambda: delivered("resolved"),
        all,
        timeout=DELIVERY_TIMEOUT,
        what="the resolve of ItsmdIncidentOpen to reach every receiver",
        describe=nstack.alertmanager.tail,
    )
    assert hooks[0]["labels"] == alert["labels"]
    assert link in slacks[0] and link in mails[0]
    assert _itsmd(nstack, f"/api/v1/incidents/{incident['id']}")["status"] == "resolved"


def test_an_approval_gated_run_is_pending_until_approved(nstack: NotifyStack) -> None:
    started = request("POST", f"{nstack.itsmd_url}/api/v1/runs", {"runbook": RUNBOOK, "service": SERVICE})
    assert started.status == 201, started.text()
    run = wait_for(
        lambda: _itsmd(nstack, f"/api/v1/runs/{started.json()['id']}"),
        lambda r: r["status"] == "waiting_approval",
        timeout=DELIVERY_TIMEOUT,
        what="the run to wait for approval",
        describe=nstack.itsmd.tail,
    )
    link = f"{CONSOLE}/runs/{run['id']}"

    def pending_in_am() -> list[dict[str, Any]]:
        return [
            a
            for a in nstack.am_alerts()
            if a["labels"].get("alertname") == "ItsmdApprovalPending" and a["labels"].get("run") == str(run["id"])
        ]

    (pending,) = wait_for(
        pending_in_am,
        bool,
        timeout=DELIVERY_TIMEOUT,
        what="ItsmdApprovalPending in Alertmanager",
        describe=nstack.itsmd.tail,
    )
    assert pending["labels"]["runbook"] == RUNBOOK
    assert pending["labels"]["approver"] == "any approver"
    assert pending["annotations"]["console_url"] == link
    hooks = wait_for(
        lambda: _ours(nstack.receivers.got.copy("webhooks"), "ItsmdApprovalPending", "firing"),
        bool,
        timeout=DELIVERY_TIMEOUT,
        what="ItsmdApprovalPending at the webhook receiver",
        describe=nstack.alertmanager.tail,
    )
    assert hooks[0]["annotations"]["console_url"] == link

    approved = post_json(f"{nstack.itsmd_url}/api/v1/runs/{run['id']}/approve", {"reason": "go"})
    assert approved["status"] != "waiting_approval", approved
    wait_for(
        lambda: _ours(nstack.receivers.got.copy("webhooks"), "ItsmdApprovalPending", "resolved"),
        bool,
        timeout=DELIVERY_TIMEOUT,
        what="ItsmdApprovalPending to resolve once approved",
        describe=nstack.alertmanager.tail,
    )
