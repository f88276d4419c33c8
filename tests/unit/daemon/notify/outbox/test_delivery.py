from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest

from daemon.notify.outbox import signing
from daemon.notify.outbox.deliveries import State
from daemon.notify.outbox.delivery import Deliverer
from tests.unit.daemon.notify.outbox.harness import SECRET, Harness, documented_verify, event, receiver
from tests.unit.daemon.notify.outbox.receiver_server import Receiver


async def test_a_delivery_is_signed_and_carries_its_event_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Receiver
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, url=hook.url)])
    async with aiohttp.ClientSession() as session:
        try:
            # Real time: the documented snippet checks the timestamp against the wall clock.
            h.clock.advance(time.time() - h.clock.now())
            h.outbox.publish(event(at=h.clock.now()))
            await h.writer.flush()
            assert await Deliverer(h.outbox, session, h.clock).deliver_due("hook") == 1
            [got] = hook.got
            body = json.loads(got.body)
            assert got.headers[signing.EVENT_ID_HEADER] == body["id"]
            assert documented_verify()(SECRET.encode(), got.body, got.headers[signing.SIGNATURE_HEADER])
            await h.writer.flush()
            assert h.rows()[0][3:] == ("delivered", 1)
        finally:
            h.close()


async def test_an_error_answer_or_a_receiver_that_is_down_is_retried_with_the_same_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Receiver
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, url=hook.url, retry_initial="5s")])
    async with aiohttp.ClientSession() as session:
        try:
            deliverer = Deliverer(h.outbox, session, h.clock)
            h.outbox.publish(event(at=h.clock.now()))
            await h.writer.flush()
            hook.status = 503
            await deliverer.deliver_due("hook")
            await h.writer.flush()
            [d] = [*h.outbox._pending.values()]
            assert d.state is State.PENDING and d.attempts == 1 and d.last_error == "HTTP 503"
            assert await deliverer.deliver_due("hook") == 0  # backing off
            port = hook.server.port if hook.server else 0
            await hook.stop()
            h.clock.advance(5)
            await deliverer.deliver_due("hook")
            await h.writer.flush()
            assert d.attempts == 2 and d.last_error.startswith("Client")  # no answer at all
            hook.status = 200
            await hook.start(port)
            h.clock.advance(10)
            await deliverer.deliver_due("hook")
            await h.writer.flush()
            ids = {json.loads(g.body)["id"] for g in hook.got}
            assert ids == {d.event_id} and len(hook.got) == 2
            assert h.rows()[0][3:] == ("delivered", 3)
        finally:
            h.close()


async def test_the_rate_limit_holds_back_deliveries_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Receiver
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, url=hook.url, rate_limit=1, rate_burst=2)])
    async with aiohttp.ClientSession() as session:
        try:
            deliverer = Deliverer(h.outbox, session, h.clock)
            for n in range(5):
                h.outbox.publish(event(at=h.clock.now(), incident=n))
            await h.writer.flush()
            assert await deliverer.deliver_due("hook") == 2
            assert await deliverer.deliver_due("hook") == 0
            h.clock.advance(1)
            assert await deliverer.deliver_due("hook") == 1
            assert len(hook.got) == 3
        finally:
            h.close()


async def test_a_redirect_is_not_followed_with_the_signed_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Receiver
) -> None:
    h = Harness(tmp_path, [receiver(monkeypatch, url=hook.url)])
    async with aiohttp.ClientSession() as session:
        try:
            hook.status = 307
            h.outbox.publish(event(at=h.clock.now()))
            await h.writer.flush()
            await Deliverer(h.outbox, session, h.clock).deliver_due("hook")
            await h.writer.flush()
            assert len(hook.got) == 1  # /hook only, never /elsewhere
            assert h.rows()[0][3:] == ("pending", 1)
            [d] = h.outbox._pending.values()
            assert d.last_error == "HTTP 307"
        finally:
            h.close()
