"""The correlator's SLA-at-risk moment as a signed webhook, delivered to a real local receiver."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from daemon.clock import ManualClock
from daemon.model import Source
from daemon.notify.outbox import signing
from daemon.notify.outbox.delivery import Deliverer
from daemon.notify.outbox.incidents import IncidentNotices
from daemon.notify.outbox.outbox import Outbox
from daemon.notify.publish.config import PublishConfig
from tests.unit.daemon.notify.outbox.harness import SECRET, receiver
from tests.unit.daemon.notify.outbox.receiver_server import Receiver
from tests.unit.daemon.records import Stack, incoming

T0 = 1_800_000_000.0


async def test_sla_at_risk_arrives_as_a_webhook_with_target_share_and_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Receiver
) -> None:
    clock = ManualClock(T0)
    shares = PublishConfig(sla_at_risk={"P2": 0.5})
    stack = Stack(tmp_path, at_risk_share=shares.at_risk_share)
    # Only at-risk events, so the opened event does not stand before it in the receiver's queue.
    outbox = Outbox(stack.writer, stack.counters, clock, [receiver(monkeypatch, url=hook.url, events=["sla_at_risk"])])
    stack.correlator.subscribe(IncidentNotices(outbox, stack.correlator.get).on_incident_event)
    try:
        alert = incoming(alertname="Down", service="api", severity="critical", starts_at=T0)
        stack.correlator.handle(stack.table.apply([alert], Source.ALERTMANAGER, T0)[0], T0)
        incident = stack.correlator.get(1)
        assert incident is not None and incident.priority == "P2"
        respond = incident.sla.respond_by
        assert respond is not None
        at = T0 + (respond - T0) / 2
        assert stack.correlator.next_due() == at
        clock.advance(at - T0)
        stack.correlator.run_due(clock.now())
        stack.correlator.run_due(clock.now() + 1)  # once
        await stack.writer.flush()
        async with aiohttp.ClientSession() as session:
            assert await Deliverer(outbox, session, clock).deliver_due("hook") == 1
            assert await Deliverer(outbox, session, clock).deliver_due("hook") == 0
        [got] = hook.got
        stamp = int(got.headers[signing.TIMESTAMP_HEADER])
        assert (
            got.headers[signing.SIGNATURE_HEADER]
            == f"t={stamp},v1={signing.signature(SECRET.encode(), stamp, got.body)}"
        )
        body = json.loads(got.body)
        assert body["kind"] == "sla_at_risk"
        assert (body["incident_id"], body["service"], body["priority"], body["at"]) == (1, "api", "P2", at)
        assert (body["target"], body["share"], body["deadline"]) == ("respond", 0.5, respond)
        assert body["incident"]["status"] == "open"
    finally:
        stack.close()
