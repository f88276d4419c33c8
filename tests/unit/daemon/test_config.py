"""The config file: defaults, the shipped example, path resolution, overrides and the problems it reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.config import Config, is_loopback, load_config, parse_listen
from daemon.correlate.rules import CorrelationRules
from daemon.errors import ConfigError
from tests.unit.daemon.configfiles import problems, write

REPO = Path(__file__).resolve().parents[3]


def test_empty_config_is_all_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "etc" / "itsmd.yaml", "{}\n"))
    defaults = Config()
    assert loaded.config.model_copy(update={"data_dir": defaults.data_dir, "runbooks": defaults.runbooks}) == defaults
    assert loaded.config.data_dir == tmp_path / "etc" / "data"
    assert loaded.config.runbooks.dir == tmp_path / "etc" / "runbooks"
    assert loaded.db_path == tmp_path / "etc" / "data" / "itsmd.db"
    assert loaded.config.rules_dir is None
    assert loaded.correlation == CorrelationRules()
    assert loaded.correlation.group_by == ("alertname", "service")


def test_a_file_with_only_comments_is_all_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "itsmd.yaml", "# nothing set\n"))
    assert loaded.config.listen == "127.0.0.1:9797"


def test_shipped_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(REPO / "config.example.yaml")
    cfg = loaded.config
    assert cfg.listen == "127.0.0.1:9797"
    assert cfg.data_dir == REPO / "data"
    assert cfg.rules_dir == REPO / "rules"
    assert cfg.shutdown_timeout == 15.0
    assert (cfg.ingest.max_body_bytes, cfg.ingest.commit_timeout) == (8388608, 10.0)
    assert cfg.alerts.webhook_stale_after == 4 * 3600 + 15 * 60
    assert (cfg.alerts.resolve_timeout, cfg.alerts.resolved_retention, cfg.alerts.sweep_interval) == (300, 3600, 2)
    assert (cfg.storage.synchronous, cfg.storage.flush_interval) == ("normal", 1.0)
    assert loaded.correlation.group_by == ("alertname", "service")
    assert loaded.correlation.reopen_window == 1800.0
    catalogue = loaded.rules.catalogue
    assert (catalogue.service_label, catalogue.default_service) == ("service", "unknown")
    assert [s.name for s in catalogue.services] == ["checkout", "search", "unknown"]
    assert loaded.rules.priority.matrix["high"]["high"] == "P1"
    assert (cfg.runbooks.dir, cfg.runbooks.change_suspect_window) == (REPO / "runbooks", 3600.0)
    assert (cfg.runbooks.max_output_bytes, cfg.runbooks.secrets) == (65536, {})


def test_relative_paths_resolve_against_the_config_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "itsmd"
    write(etc / "rules" / "correlation.yaml", "group_by: [alertname]\nreopen_window: 5m\n")
    config = write(etc / "itsmd.yaml", "data_dir: ../../var/itsmd\nrules_dir: rules\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "etc" / "itsmd" / "itsmd.yaml")
    assert loaded.config.data_dir.resolve() == (tmp_path / "var" / "itsmd").resolve()
    assert loaded.config.data_dir.is_absolute()
    assert loaded.config.rules_dir == etc.resolve() / "rules"
    assert loaded.correlation.group_by == ("alertname",)
    assert loaded.correlation.reopen_window == 300.0
    assert config.exists()


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    data = tmp_path / "somewhere" / "data"
    loaded = load_config(write(tmp_path / "itsmd.yaml", f"data_dir: {data}\n"))
    assert loaded.config.data_dir == data


def test_command_line_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path / "etc" / "itsmd.yaml", "listen: 127.0.0.1:1000\ndata_dir: data\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_config(config, listen="[::1]:2000", data_dir=Path("cli-data"))
    assert loaded.config.listen == "[::1]:2000"
    assert loaded.config.data_dir == tmp_path / "cli-data"  # relative to the working directory, like any CLI path


def test_bad_listen_override_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        load_config(write(tmp_path / "itsmd.yaml", "{}\n"), listen="9797")


def test_rules_dir_without_correlation_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    config = write(tmp_path / "itsmd.yaml", "rules_dir: rules\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "rules" / "correlation.yaml")
    assert problem.message.startswith("cannot read")


def test_problems_in_the_rules_name_the_rules_file(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules" / "correlation.yaml", "# rules\ngroup_by: [alertname, bad-label]\n")
    config = write(tmp_path / "itsmd.yaml", "rules_dir: rules\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.key) == (str(rules), 2, "group_by[1]")
    assert "'bad-label' is not a label name" in problem.message


# -- problems, with their line -------------------------------------------------------------------------------


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "# itsmd\nlisten: 127.0.0.1:9797\n\ningest:\n  max_body_byte: 10\n")
    assert problems(config) == [
        (5, "ingest.max_body_byte", "unknown key (check the spelling; see config.example.yaml)")
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "listen: 127.0.0.1:9797\nlisten_address: x\n")
    assert [(line, key) for line, key, _ in problems(config)] == [(2, "listen_address")]


def test_bad_duration_names_the_accepted_form(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "alerts:\n  sweep_interval: 2s\n  resolve_timeout: 5 minutes\n")
    [(line, key, message)] = problems(config)
    assert (line, key) == (3, "alerts.resolve_timeout")
    assert "'5 minutes' is not a duration" in message


def test_bad_listen_in_the_file(tmp_path: Path) -> None:
    [(line, key, message)] = problems(write(tmp_path / "itsmd.yaml", "\nlisten: localhost\n"))
    assert (line, key) == (2, "listen")
    assert "HOST:PORT" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("storage:\n  synchronous: off\n", "storage.synchronous"),
        ("storage:\n  synchronous: extra\n", "storage.synchronous"),
        ("ingest:\n  max_body_bytes: 0\n", "ingest.max_body_bytes"),
        ("ingest:\n  max_body_bytes: lots\n", "ingest.max_body_bytes"),
        ("ingest: 5\n", "ingest"),
        ("shutdown_timeout: true\n", "shutdown_timeout"),
    ],
)
def test_wrong_values_are_problems(tmp_path: Path, text: str, key: str) -> None:
    assert [k for _, k, _ in problems(write(tmp_path / "itsmd.yaml", text))] == [key]


@pytest.mark.parametrize(
    "text",
    [
        "ingest:\n  commit_timeout: -1\n",
        "alerts:\n  resolve_timeout: -300\n",
        "alerts:\n  sweep_interval: -2\n",
        "storage:\n  flush_interval: -1\n",
        "shutdown_timeout: -15\n",
    ],
)
def test_negative_durations_are_problems(tmp_path: Path, text: str) -> None:
    """A negative number of seconds cannot be meant: commit_timeout -1 would answer every ingest with 503."""
    assert len(problems(write(tmp_path / "itsmd.yaml", text))) == 1


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "listn: x\nalerts:\n  resolve_timeout: soon\nstorage:\n  synchronous: no\n")
    assert sorted((line, key) for line, key, _ in problems(config)) == [
        (1, "listn"),
        (3, "alerts.resolve_timeout"),
        (5, "storage.synchronous"),
    ]


# -- correlation rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("group_by: [alertname, bad-label]\n", "'bad-label' is not a label name"),
        ("group_by: [alertname, alertname]\n", "listed twice"),
        ("group_by: []\n", "at least 1"),
        ("title: '{{ labels.alertname'\n", "invalid template"),
        ("flapping: {enter: 3, leave: 3}\n", "must be lower than enter (3)"),
        ("close_after: 1m\n", "shorter than reopen_window"),
        ("reopen_window: half an hour\n", "is not a duration"),
        ("group_by: alertname\n", ""),
    ],
)
def test_bad_rules(tmp_path: Path, text: str, fragment: str) -> None:
    write(tmp_path / "rules" / "correlation.yaml", text)
    config = write(tmp_path / "itsmd.yaml", "rules_dir: rules\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert problem.line == 1
    assert fragment in problem.message


# -- listen ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("127.0.0.1:9797", ("127.0.0.1", 9797)), ("[::1]:80", ("::1", 80)), ("localhost:0", ("localhost", 0))],
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["9797", ":9797", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "h:-1", ""])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape("is not HOST:PORT, like 127.0.0.1:9797")):
        parse_listen(value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 (a value under test, not a bind)
        ("::", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("name", "text", "line", "fragment"),
    [
        ("services.yaml", "service_label: 'team name'\n", 1, "should match pattern"),
        ("services.yaml", "services:\n  - name: a\n    tier: huge\n", 3, "'high', 'medium' or 'low'"),
        ("services.yaml", "services:\n  - name: a\n    matchers: ['x=~\"(\"']\n", 3, "invalid regular expression"),
        ("services.yaml", "services:\n  - name: a\n  - name: a\n", 3, "already listed as services[0] at line 2"),
        (
            "services.yaml",
            "services:\n  - name: a\n    maintenance:\n      - cron: '61 * * * *'\n        duration: 1h\n",
            4,
            "cron",
        ),
        ("services.yaml", "services:\n  - name: a\n    maintenance:\n      - cron: '0 1 * * *'\n", 4, "both cron"),
        ("services.yaml", "targets:\n  P9: {respond: 1m}\n", 2, "P1"),
        (
            "priority.yaml",
            "matrix:\n  high: {high: P1, medium: P2}\n  medium: {high: P2, medium: P3, low: P4}\n"
            "  low: {high: P3, medium: P4, low: P5}\n",
            2,
            "is missing: give the priority (P1..P5) of impact high at urgency low",
        ),
        ("priority.yaml", "urgency:\n  critical: urgent\n", 2, "'high', 'medium' or 'low'"),
    ],
)
def test_bad_catalogue_and_priority_files(tmp_path: Path, name: str, text: str, line: int, fragment: str) -> None:
    write(tmp_path / "rules" / "correlation.yaml", "{}\n")
    write(tmp_path / "rules" / name, text)
    config = write(tmp_path / "itsmd.yaml", "rules_dir: rules\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "rules" / name)
    assert (problem.line, fragment in problem.message) == (line, True), problem


def test_all_rule_files_report_at_once(tmp_path: Path) -> None:
    write(tmp_path / "rules" / "correlation.yaml", "window: soon\n")
    write(tmp_path / "rules" / "services.yaml", "default_tier: huge\n")
    write(tmp_path / "rules" / "priority.yaml", "default_urgency: now\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "itsmd.yaml", "rules_dir: rules\n"))
    files = sorted(Path(p.file).name for p in caught.value.problems)
    assert files == ["correlation.yaml", "priority.yaml", "services.yaml"]


def test_notify_alertmanagers_and_publishing(tmp_path: Path) -> None:
    config = write(
        tmp_path / "itsmd.yaml",
        "notify:\n  external_url: https://itsmd.example.org\n  alertmanagers:\n    - url: http://am:9093\n"
        "      timeout: 5s\n  publish:\n    interval: 1m\n    kinds: [ItsmdIncidentOpen]\n",
    )
    notify = load_config(config).config.notify
    assert [str(am.url) for am in notify.alertmanagers] == ["http://am:9093/"]
    assert notify.publish.interval == 60.0
    assert notify.publish.ends_after == 240.0
    assert notify.publish.kinds == ("ItsmdIncidentOpen",)


def test_notify_problems_name_their_keys(tmp_path: Path) -> None:
    config = write(
        tmp_path / "itsmd.yaml",
        "notify:\n  publish:\n    kinds: [ItsmdNope]\n    sla_at_risk: {P7: 0.5}\n",
    )
    found = {key: message for _, key, message in problems(config)}
    assert set(found) == {"notify.publish.kinds[0]", "notify.publish.sla_at_risk"}, found
    assert "P1..P5 or default" in found["notify.publish.sla_at_risk"]
