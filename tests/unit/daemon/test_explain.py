"""`itsmd explain`: the same answer the daemon would act on, from the shipped rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.unit.daemon.configfiles import write

REPO = Path(__file__).resolve().parents[3]


def test_explain_text_names_service_rule_key_and_priority(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", "--rules", str(REPO / "rules"), "-l", "alertname=TargetDown", "-l", "service=payment-gateway"]
    assert main([*argv, "-l", "severity=critical", "-l", "cluster=eu1", "-l", "instance=web-1"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["service"].strip().startswith("checkout (tier high) <- matchers service=~")
    assert lines["rule"].strip() == 'node-outage <- matchers alertname=~"NodeDown|TargetDown"'
    assert lines["key"].strip() == 'node-outage:{alertname="TargetDown",service="checkout",cluster="eu1"}'
    assert lines["priority"].strip().startswith("P1 = impact high (tier of service checkout) x urgency high")
    assert lines["targets"].strip() == "respond 10m, resolve 4h"
    assert lines["title"].strip() == "TargetDown on checkout (web-1)"


def test_explain_json_from_an_alert_file_and_the_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    alert = write(tmp_path / "alert.json", json.dumps({"labels": {"alertname": "X", "severity": "info"}}))
    assert main(["explain", "--config", str(REPO / "config.example.yaml"), "--alert", str(alert), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["service"]["name"] == "unknown"
    assert result["service"]["why"] == "no service matched: default_service"
    assert result["priority"]["priority"] == "P4"
    assert result["rule"]["name"] == "default"


def test_explain_reports_bad_rules_and_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "rules" / "correlation.yaml", "group_by: nope\n")
    assert main(["explain", "--rules", str(tmp_path / "rules"), "-l", "a=b"]) == 1
    assert "correlation.yaml:1: group_by" in capsys.readouterr().err
    assert main(["explain", "--rules", str(REPO / "rules"), "-l", "novalue"]) == 2
    assert "use NAME=VALUE" in capsys.readouterr().err


def test_explain_drops_empty_label_values_as_ingest_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`-l team=` is what `amtool alert add ... team=` sends: no label, as in Alertmanager and in the daemon."""
    argv = ["explain", "--rules", str(REPO / "rules"), "--json", "-l", "alertname=TargetDown", "-l", "cluster=eu1"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "-l", "service=", "-l", "bad-name="]) == 0
    with_empty = json.loads(capsys.readouterr().out)
    assert with_empty["labels"] == {"alertname": "TargetDown", "cluster": "eu1"}
    assert (with_empty["fingerprint"], with_empty["key"]) == (plain["fingerprint"], plain["key"])
    assert main(["explain", "--rules", str(REPO / "rules"), "-l", "team="]) == 2
    assert "at least one label" in capsys.readouterr().err
