"""itsmd's own published alerts (label itsmd_publisher) coming back through an Alertmanager route: recognised,
counted, not ingested."""

from __future__ import annotations

from tests.unit.daemon.ingest.conftest import Daemon, series
from tests.unit.daemon.notify.publish.test_daemon import webhook


async def test_its_own_alerts_coming_back_are_counted_not_ingested(daemon: Daemon) -> None:
    own = {"alertname": "ItsmdIncidentOpen", "itsmd_publisher": "itsmd", "incident": "1", "service": "checkout"}
    status, body = await daemon.webhook(webhook(own))
    assert (status, body) == (200, {"status": "success", "accepted": 0, "ignored_own": 1})
    status, body = await daemon.v2([{"labels": own}, {"labels": {"alertname": "Real", "service": "api"}}])
    assert (status, body) == (200, {"status": "success", "accepted": 1, "ignored_own": 1})
    assert [a["labels"]["alertname"] for a in await daemon.alerts()] == ["Real"]
    assert len(await daemon.incidents()) == 1
    metrics = await daemon.metrics()
    assert metrics[series("itsmd_alerts_looped_back_total", source="alertmanager")] == 1
    assert metrics[series("itsmd_alerts_looped_back_total", source="prometheus")] == 1
