"""A lost resolve, against the real Prometheus: the outage ends when Prometheus last saw the alert firing.

Prometheus evaluates a real alert (the target goes down) but sends it nowhere; the test delivers the
firing webhook itself, as Alertmanager would, with the labels Prometheus gives the alert (one of them a
value PromQL must escape) plus Prometheus' external label, which its ALERTS series lack. Then the alert
stops firing in Prometheus and the resolve never comes. With a short `webhook_stale_after` itsmd expires
the alert, asks Prometheus for the alert's ALERTS series, and records the incident as ended at the last
firing sample, marked estimated; the availability downtime is that outage, not the stale period.

Every step waits for what Prometheus or itsmd reports, never for a fixed time.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from integrations.alertmanager.fingerprint import fingerprint

from .client import get_json, post_json, request, wait_for
from .stack import CLUSTER, JOB, SERVICE, Stack, module_stack

pytestmark = pytest.mark.e2e
ALERT = "LostResolve"
NOTE = 'a "quoted" \\ value, {braces} and a }'
"""A rule label: it becomes an alert label, which itsmd must escape to query Prometheus."""
STALE = 12.0
"""webhook_stale_after of this stack: the expiry comes this long after the last webhook."""
FIRING_AFTER = 5.0
"""How long the alert keeps firing in Prometheus after the webhook, so its end is not the last-seen time."""
EVAL = 1.0
"""Prometheus' rule evaluation interval here: the precision of an end read from ALERTS."""
STEP_TIMEOUT = 40.0


class LostResolveStack(Stack):
    """Prometheus evaluates one alert of its own and sends alerts nowhere; itsmd knows where Prometheus is."""

    def write_configs(self) -> None:
        super().write_configs()
        rules = {
            "groups": [
                {
                    "name": "lost-resolve",
                    "interval": f"{EVAL:g}s",
                    "rules": [
                        {
                            "alert": ALERT,
                            "expr": f'up{{job="{JOB}"}} == 0',
                            "for": "0s",
                            "labels": {"severity": "critical", "note": NOTE},
                        }
                    ],
                }
            ]
        }
        (self.etc / "rules.yml").write_text(yaml.safe_dump(rules))
        prometheus = yaml.safe_load((self.etc / "prometheus.yml").read_text())
        prometheus.pop("alerting", None)  # the external label cluster stays: alerts sent on would carry it
        (self.etc / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
        config = yaml.safe_load(self.itsmd_config.read_text())
        config["alerts"] = {"webhook_stale_after": f"{STALE:g}s", "resolve_timeout": "5m", "sweep_interval": "1s"}
        config["prometheus"] = {"url": self.prom_url, "timeout": "5s"}
        self.itsmd_config.write_text(yaml.safe_dump(config))

    def wait_prometheus_wired(self) -> None:
        def scraped() -> bool:
            self.prometheus.check_alive()
            targets = get_json(f"{self.prom_url}/api/v1/targets?state=active")["data"]["activeTargets"]
            return any(t["labels"].get("job") == JOB and t["health"] == "up" for t in targets)

        wait_for(scraped, bool, timeout=STEP_TIMEOUT, what="Prometheus scraping the target")


@pytest.fixture(scope="module")
def lstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LostResolveStack]:
    yield from module_stack(LostResolveStack, tmp_path_factory.mktemp("e2e-lost-resolve"))


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prometheus_alert(stack: Stack) -> dict[str, Any] | None:
    alerts = get_json(f"{stack.prom_url}/api/v1/alerts")["data"]["alerts"]
    return next((a for a in alerts if a["labels"]["alertname"] == ALERT and a["state"] == "firing"), None)


def firing_samples(stack: Stack, labels: dict[str, str]) -> list[float]:
    """Timestamps of the alert's ALERTS{alertstate="firing"} samples in the last 10 minutes, as stored."""
    query = f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}[10m]'  # the test's own query: no label data in it
    answer = get_json(f"{stack.prom_url}/api/v1/query?query={urllib.parse.quote(query)}")
    assert answer["status"] == "success", answer
    series = [
        s
        for s in answer["data"]["result"]
        if {**s["metric"]} == {**labels, "alertstate": "firing", "__name__": "ALERTS"}
    ]
    return [float(t) for s in series for t, _ in s["values"]]


def webhook(labels: dict[str, str], starts_at: str) -> dict[str, Any]:
    """A firing notification as Alertmanager 0.25 sends it."""
    return {
        "receiver": "itsmd",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint(labels),
            }
        ],
        "groupLabels": {"alertname": ALERT},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{ALERT}"}}',
        "truncatedAlerts": 0,
    }


def downtime(stack: Stack) -> float:
    text = request("GET", f"{stack.itsmd_url}/metrics").text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "itsmd_service_downtime_seconds_total"
                and sample.labels.get("service") == SERVICE
                and sample.labels.get("planned") == "false"
            ):
                return float(sample.value)
    raise AssertionError("no itsmd_service_downtime_seconds_total for the service")


def test_a_lost_resolve_ends_at_the_last_firing_alerts_sample(lstack: LostResolveStack) -> None:
    lstack.set_target_down(True)
    alert = wait_for(
        lambda: prometheus_alert(lstack),
        lambda a: a is not None,
        timeout=STEP_TIMEOUT,
        what=f"Prometheus evaluating {ALERT} as firing",
        describe=lstack.prometheus.tail,
    )
    assert alert is not None
    labels: dict[str, str] = alert["labels"]
    assert labels["note"] == NOTE and labels["service"] == SERVICE
    assert "cluster" not in labels  # Prometheus' own view of the alert (and its ALERTS series) lacks it

    sent = time.time()
    # As Alertmanager delivers it: with the external labels Prometheus adds when it sends the alert.
    answer = post_json(
        f"{lstack.itsmd_url}/webhook/alertmanager", webhook({**labels, "cluster": CLUSTER}, alert["activeAt"])
    )
    assert answer["status"] == "success", answer
    [incident] = get_json(f"{lstack.itsmd_url}/api/v1/incidents?status=open")["incidents"]
    assert incident["priority"] == "P1"  # tier high x critical: counts as downtime

    # The alert goes on firing in Prometheus for a while after its last webhook, then stops; no resolve.
    wait_for(
        lambda: firing_samples(lstack, labels),
        lambda times: bool(times) and max(times) >= sent + FIRING_AFTER,
        timeout=STEP_TIMEOUT,
        what="ALERTS samples well after the webhook",
    )
    lstack.set_target_down(False)
    wait_for(
        lambda: prometheus_alert(lstack) is None,
        bool,
        timeout=STEP_TIMEOUT,
        what=f"{ALERT} no longer firing in Prometheus",
    )

    detail = wait_for(
        lambda: get_json(f"{lstack.itsmd_url}/api/v1/incidents/{incident['id']}"),
        lambda i: i["status"] == "resolved",
        timeout=STEP_TIMEOUT + STALE,
        what="the incident resolved by the alert's expiry",
        describe=lstack.itsmd.tail,
    )
    last_firing = max(firing_samples(lstack, labels))
    ended, opened = epoch(detail["resolved_at"]), epoch(detail["opened_at"])
    print(f"webhook {iso(sent)}, last ALERTS sample {iso(last_firing)}, incident {json.dumps(detail)[:600]}")
    assert abs(ended - last_firing) <= EVAL  # the last firing sample, to the evaluation interval
    assert ended >= sent + FIRING_AFTER - EVAL  # not the last-seen time
    # The outage in the availability ledger is the one the evidence shows, not the stale period.
    down = downtime(lstack)
    assert down == pytest.approx(ended - opened, abs=0.01)
    assert detail["sla"]["breaches"] == []

    resolution = detail["resolution"]
    assert resolution["end_estimated"] is True
    assert resolution["end_source"] == "prometheus"
    assert resolution["resolved_by"] == "expiry"
    recorded = epoch(resolution["recorded_at"])
    assert recorded >= sent + STALE  # noticed only at the expiry...
    assert recorded - ended >= STALE - FIRING_AFTER - 2 * EVAL  # ...well after the alert really ended
    assert down < recorded - opened - (STALE - FIRING_AFTER - 2 * EVAL)
    expired = next(e for e in detail["timeline"] if e["kind"] == "alert_expired")
    assert (expired["detail"]["end_estimated"], expired["detail"]["end_source"]) == (True, "prometheus")
    resolved = detail["timeline"][-1]
    assert resolved["kind"] == "resolved"
    assert resolved["detail"]["end_estimated"] is True
