"""The publisher against a real local HTTP server standing in for Alertmanager's POST /api/v2/alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from daemon.clock import ManualClock
from daemon.metrics.counters import CounterStore
from daemon.model import Incident, IncidentStatus
from daemon.notify.publish.config import PublishConfig
from daemon.notify.publish.publisher import ERRORS, NOTIFICATIONS, Publisher
from daemon.notify.publish.states import Links, Sources
from integrations.alertmanager.client import AlertmanagerClient
from integrations.alertmanager.fingerprint import fingerprint
from tests.unit.daemon.notify.publish.records import T0, incident
from tests.unit.integrations.upstream import Upstream, serving

PATH = "/api/v2/alerts"


class _Writer:
    """CounterStore only registers a collector and says it was touched."""

    def add_collector(self, collector: object) -> None:
        pass

    def touched(self) -> None:
        pass


@pytest.fixture
async def am() -> AsyncIterator[Upstream]:
    async with serving() as server:
        server.answer("POST", PATH, 200, None, text="")
        yield server


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class World:
    def __init__(self, am: Upstream, *targets: Upstream) -> None:
        self.incidents: list[Incident] = []
        self.clock = ManualClock(T0)
        self.counters = CounterStore(_Writer())
        self.config = PublishConfig(interval=30.0)
        self.am = am
        self.targets = targets or (am,)

    def publisher(self) -> Publisher:
        """A new publisher, as after a restart: it remembers nothing of what was sent."""
        clients = [AlertmanagerClient(self.am.session, t.url()) for t in self.targets]
        return Publisher(
            clients,
            sources=Sources(incidents=lambda: self.incidents),
            config=self.config,
            links=Links("https://itsmd.example.org"),
            clock=self.clock,
            counters=self.counters,
        )


def posts(server: Upstream) -> list[list[dict[str, Any]]]:
    return [r.json() for r in server.requests if r.method == "POST" and r.path == PATH]


async def test_a_state_fires_with_ends_ahead_then_resolves_once(am: Upstream) -> None:
    world = World(am)
    world.incidents.append(incident())
    publisher = world.publisher()
    await publisher.publish()
    ((alert,),) = posts(am)
    assert alert["labels"]["alertname"] == "ItsmdIncidentOpen"
    assert alert["labels"]["incident"] == "7"
    assert epoch(alert["startsAt"]) == T0
    assert epoch(alert["endsAt"]) == T0 + 120  # 4 x interval ahead
    assert alert["generatorURL"] == "https://itsmd.example.org/incidents/7"
    assert alert["annotations"]["console_url"] == "https://itsmd.example.org/incidents/7"
    assert publisher.published["ItsmdIncidentOpen"] == 1

    world.clock.advance(30)
    await publisher.publish()
    resent = posts(am)[1][0]
    assert resent["labels"] == alert["labels"]
    assert epoch(resent["endsAt"]) == T0 + 150

    world.incidents[0].status = IncidentStatus.RESOLVED
    world.clock.advance(30)
    await publisher.publish()
    (resolve,) = posts(am)[2]
    assert resolve["labels"] == alert["labels"]
    assert epoch(resolve["endsAt"]) == T0 + 60  # now: resolved
    world.clock.advance(30)
    await publisher.publish()
    assert len(posts(am)) == 3  # nothing left to say: no empty post, no second resolve
    assert (
        world.counters.get(
            NOTIFICATIONS, (("channel", "alertmanager"), ("kind", "ItsmdIncidentOpen"), ("outcome", "sent"))
        )
        == 3
    )


async def test_fingerprints_are_the_same_across_re_sends_and_restarts(am: Upstream) -> None:
    world = World(am)
    world.incidents.append(incident())
    await world.publisher().publish()
    world.incidents[0].status = IncidentStatus.ACKNOWLEDGED
    world.clock.advance(300)
    await world.publisher().publish()
    first, second = (fingerprint(p[0]["labels"]) for p in posts(am))
    assert first == second
    assert posts(am)[1][0]["annotations"]["status"] == "acknowledged"


async def test_a_priority_raise_resolves_the_old_alert_and_fires_the_new(am: Upstream) -> None:
    world = World(am)
    world.incidents.append(incident(priority="P3"))
    publisher = world.publisher()
    await publisher.publish()
    world.incidents[0].priority = "P1"
    world.clock.advance(30)
    await publisher.publish()
    sent = {a["labels"]["priority"]: a for a in posts(am)[1]}
    assert epoch(sent["P3"]["endsAt"]) == T0 + 30
    assert epoch(sent["P1"]["endsAt"]) == T0 + 150


async def test_a_failed_post_is_counted_and_its_resolve_retried_next_round(am: Upstream) -> None:
    world = World(am)
    world.incidents.append(incident())
    publisher = world.publisher()
    await publisher.publish()
    am.answer("POST", PATH, 500, text="internal error")
    world.incidents.clear()
    world.clock.advance(30)
    await publisher.publish()
    errors = {dict(k)["alertmanager"]: v for k, v in world.counters.series(ERRORS)}
    assert errors == {am.url() + "/": 1.0}  # the base URL as the client shows it
    assert (
        world.counters.get(
            NOTIFICATIONS, (("channel", "alertmanager"), ("kind", "ItsmdIncidentOpen"), ("outcome", "failed"))
        )
        == 1
    )
    am.answer("POST", PATH, 200, text="")
    world.clock.advance(30)
    await publisher.publish()
    (retried,) = posts(am)[2]
    assert epoch(retried["endsAt"]) == T0 + 60


async def test_one_alertmanager_down_does_not_stop_the_other(am: Upstream) -> None:
    async with serving() as down:
        down.answer("POST", PATH, 503, text="unavailable")
        world = World(am, down, am)
        world.incidents.append(incident())
        await world.publisher().publish()
    assert len(posts(am)) == 1
    assert len(posts(down)) == 1
    assert sorted(v for _, v in world.counters.series(ERRORS)) == [0.0, 1.0]
