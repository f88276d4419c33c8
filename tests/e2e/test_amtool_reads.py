"""The real amtool 0.25 against itsmd's Alertmanager v2 reads, and the same alerts in a real Alertmanager 0.25.

The module starts its own Alertmanager and itsmd (no Prometheus: the alerts are posted by amtool itself and
by a script, to both). itsmd reads its silences from that Alertmanager and has an API read token, which
amtool presents through its --http.config.file.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from .client import request, wait_until
from .stack import START_TIMEOUT, Binaries, MissingBinary, Stack

pytestmark = pytest.mark.e2e

READ_TOKEN = "e2e-amtool-read-t0ken-0a1b2c3d"  # noqa: S105
AMTOOL_TIMEOUT = 30.0
NOW = datetime.now(UTC)
# Prometheus' way of posting: startsAt with sub-millisecond digits, endsAt a few minutes ahead.
POSTED = [
    {
        "labels": {"alertname": "DiskFull", "service": "db", "instance": "db-1", "severity": "critical"},
        "annotations": {"summary": "disk of db-1 is full"},
        "startsAt": (NOW - timedelta(seconds=90, microseconds=123456)).isoformat(),
        "endsAt": (NOW + timedelta(minutes=30)).isoformat(),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=disk",
    },
    {
        "labels": {"alertname": "HighLatency", "service": "api", "instance": "i-1"},
        "annotations": {"summary": "p99 over 2s", "runbook_url": "https://wiki.example/latency"},
        "startsAt": (NOW - timedelta(seconds=30, microseconds=654321)).isoformat(),
        "endsAt": (NOW + timedelta(minutes=30)).isoformat(),
    },
    {
        "labels": {"alertname": "HighLatency", "service": "api", "instance": "i-2"},
        "startsAt": (NOW - timedelta(seconds=20)).isoformat(),
        "endsAt": (NOW + timedelta(minutes=30)).isoformat(),
    },
]
ADDED = {"alertname": "ManualCheck", "service": "api", "instance": "i-3"}
"""An alert amtool adds itself (amtool alert add), to both."""


@dataclass
class Both:
    stack: Stack
    amtool_config: Path
    home: Path

    def amtool(self, url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.stack.binaries.amtool, f"--alertmanager.url={url}", *args]
        if url == self.stack.itsmd_url:
            argv.insert(2, f"--http.config.file={self.amtool_config}")
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=AMTOOL_TIMEOUT,
            check=False,
            env={**os.environ, "HOME": str(self.home)},  # no amtool.yml of the machine's user
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done

    def itsmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.amtool(self.stack.itsmd_url, *args)

    def json_alerts(self, url: str, *args: str) -> dict[str, Any]:
        alerts = json.loads(self.amtool(url, "alert", "query", "-o", "json", *args).stdout)
        return {a["fingerprint"]: a for a in alerts}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    try:
        binaries = Binaries.find()
    except MissingBinary as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    root = Path(tmp_path_factory.mktemp("amtool-reads"))
    stack = Stack(root, binaries)
    stack.write_configs()
    stack.write_rules({"services": [{"name": "api", "tier": "high"}, {"name": "db", "tier": "medium"}]})
    stack.check_configs()
    config = yaml.safe_load(stack.itsmd_config.read_text())
    (stack.itsmd_dir / "read.token").write_text(READ_TOKEN + "\n")
    config["alertmanager"] = {"url": stack.am_url, "timeout": "5s"}
    config["auth"] = {"api": {"read_tokens": [{"token_file": "read.token"}]}}
    stack.itsmd_config.write_text(yaml.safe_dump(config))
    amtool_config = root / "amtool-http.yml"
    amtool_config.write_text(
        yaml.safe_dump({"authorization": {"credentials_file": str(stack.itsmd_dir / "read.token")}})
    )
    home = root / "home"
    home.mkdir()
    stack.alertmanager.start()
    try:

        def ready() -> bool:
            stack.alertmanager.check_alive()
            return request("GET", f"{stack.am_url}/-/ready", timeout=2.0).status == 200

        wait_until(ready, timeout=START_TIMEOUT, what="Alertmanager to be ready", describe=stack.alertmanager.tail)
        stack.start_itsmd()
        for url in (stack.am_url, stack.itsmd_url):
            answer = request("POST", f"{url}/api/v2/alerts", POSTED)
            assert answer.status == 200, f"{url}: {answer.status} {answer.text()}"
        fixture = Both(stack, amtool_config, home)
        starts = (NOW - timedelta(seconds=10)).isoformat()
        ends = (NOW + timedelta(minutes=30)).isoformat()
        for url in (stack.am_url, stack.itsmd_url):
            labels = [f"{k}={v}" for k, v in ADDED.items()]
            fixture.amtool(url, "alert", "add", *labels, "--annotation=summary=added by amtool", f"--start={starts}",
                           f"--end={ends}")  # fmt: skip
        yield fixture
    finally:
        for process in (stack.itsmd, stack.alertmanager):
            process.stop()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ms(text: str) -> datetime:
    moment = _instant(text).astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def test_alert_query_json_matches_a_real_alertmanager(both: Both) -> None:
    expected = len(POSTED) + 1

    # --silenced too: another test here silences one of them in the real Alertmanager (itsmd silences nothing).
    def all_of_them() -> dict[str, Any] | None:
        found = both.json_alerts(both.stack.am_url, "--active", "--silenced")
        return found if len(found) == expected else None

    real = wait_until(
        all_of_them,
        timeout=20,
        what=f"{expected} alerts in the real Alertmanager",
        describe=both.stack.alertmanager.tail,
    )
    ours = both.json_alerts(both.stack.itsmd_url)
    assert sorted(ours) == sorted(real)  # same fingerprints
    for fp, theirs in real.items():
        mine = ours[fp]
        assert mine["labels"] == theirs["labels"]
        annotations = {k: v for k, v in mine["annotations"].items() if not k.startswith("itsmd_")}
        assert annotations == theirs["annotations"]
        assert _ms(mine["startsAt"]) == _ms(theirs["startsAt"]), fp
        assert mine.get("generatorURL") == theirs.get("generatorURL")  # amtool leaves an empty one out
        assert mine["status"]["state"] == "active"
        assert mine["annotations"]["itsmd_incident"].isdigit()
        assert {r["name"] for r in mine["receivers"]} >= {"itsmd", f"itsmd/service/{mine['labels']['service']}"}


def test_alert_query_with_matchers_and_flags(both: Both) -> None:
    listed = both.itsmd("alert", "query").stdout
    for name in ("DiskFull", "HighLatency", "ManualCheck"):
        assert name in listed, listed
    only = both.json_alerts(both.stack.itsmd_url, "alertname=HighLatency")
    assert {a["labels"]["instance"] for a in only.values()} == {"i-1", "i-2"}
    bare = both.json_alerts(both.stack.itsmd_url, "DiskFull")  # amtool makes it alertname=DiskFull
    assert [a["labels"]["instance"] for a in bare.values()] == ["db-1"]
    regex = both.json_alerts(both.stack.itsmd_url, 'instance=~"i-[12]"', "service!=db")
    assert {a["labels"]["instance"] for a in regex.values()} == {"i-1", "i-2"}
    assert len(both.json_alerts(both.stack.itsmd_url, "--active")) == len(POSTED) + 1
    assert both.json_alerts(both.stack.itsmd_url, "--silenced") == {}  # itsmd silences nothing
    by_receiver = both.json_alerts(both.stack.itsmd_url, "--receiver=itsmd/service/db")
    assert [a["labels"]["alertname"] for a in by_receiver.values()] == ["DiskFull"]


def test_config_show_is_itsmds_config_without_the_token(both: Both) -> None:
    shown = both.itsmd("config", "show").stdout
    assert "effective configuration" in shown
    assert "read.token" in shown  # where the token comes from, not what it is
    assert READ_TOKEN not in shown


def test_silence_query_reads_the_real_alertmanagers_silences(both: Both) -> None:
    made = both.amtool(
        both.stack.am_url, "silence", "add", "alertname=DiskFull", "--comment=e2e", "--author=tester", "--duration=1h"
    )
    silence_id = made.stdout.strip()
    assert silence_id
    assert silence_id in both.itsmd("silence", "query").stdout
    ours = json.loads(both.itsmd("silence", "query", "-o", "json").stdout)
    theirs = json.loads(both.amtool(both.stack.am_url, "silence", "query", "-o", "json").stdout)
    assert ours == theirs  # read through unchanged
    assert [s["id"] for s in json.loads(both.itsmd("silence", "query", "-o", "json", "alertname=Other").stdout)] == []
    # The real Alertmanager now hides the silenced alert from active; itsmd does not silence, it still fires.
    real = wait_until(
        lambda: (found := both.json_alerts(both.stack.am_url, "--silenced")) and found,
        timeout=10,
        what="the silenced alert in the real Alertmanager",
    )
    assert [a["labels"]["alertname"] for a in real.values()] == ["DiskFull"]
    assert "DiskFull" in both.itsmd("alert", "query").stdout


def test_reads_without_the_token_are_refused(both: Both) -> None:
    answer = request("GET", f"{both.stack.itsmd_url}/api/v2/alerts")
    assert answer.status == 401


def test_amtool_alert_add_is_counted_as_amtool(both: Both) -> None:
    metrics = request("GET", f"{both.stack.itsmd_url}/metrics").text()
    counted = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("itsmd_alerts_received_total{")
    }
    assert counted["amtool"] == 1  # the one alert amtool added
    assert counted["other"] == len(POSTED)  # the script's post (Python-urllib)
    assert counted["prometheus"] == 0


def test_status_is_honest(both: Both) -> None:
    status = get_json_with_token(f"{both.stack.itsmd_url}/api/v2/status")
    assert status["versionInfo"]["version"].startswith("itsmd-")
    assert status["cluster"]["status"] == "disabled"


def get_json_with_token(url: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {READ_TOKEN}"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback http)
        return json.loads(resp.read())
