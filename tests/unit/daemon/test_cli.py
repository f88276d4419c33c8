"""`itsmd check` and the argument and config paths of `itsmd run` that return before serving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon import __version__
from daemon.cli import main
from tests.unit.daemon.configfiles import write

REPO = Path(__file__).resolve().parents[3]
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?:(?P<key>[\w.\[\]]+): )?(?P<message>.+)$")


@pytest.fixture(autouse=True)
def _restored(process_state_restored: None) -> None:
    """Every test here may reach `run`'s set-up."""


def problem_lines(stderr: str) -> list[tuple[str, int, str | None, str]]:
    """The `file:line: key: message` lines; every other line must be the FAILED summary."""
    out = []
    for text in stderr.splitlines():
        if ": FAILED: " in text:
            continue
        match = PROBLEM_LINE.match(text)
        assert match, f"not a problem line: {text!r}"
        out.append((match["file"], int(match["line"]), match["key"], match["message"]))
    return out


# -- check -------------------------------------------------------------------------------------------------


def test_check_shipped_files(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the config's rules_dir is relative to the config file, not to here
    config = REPO / "config.example.yaml"
    rules = [REPO / "rules" / name for name in ("services.yaml", "correlation.yaml", "priority.yaml")]
    assert main(["check", str(config), *map(str, rules), str(REPO / "rules")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"{config}: SUCCESS" in out.splitlines()
    for path in [*rules, REPO / "rules"]:
        assert f"{path}: SUCCESS" in out.splitlines()


def test_check_unknown_key_names_its_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(
        tmp_path / "itsmd.yaml",
        "# itsmd\nlisten: 127.0.0.1:9797\nalerts:\n  resolve_timeout: 5m\n  resolve_timout: 5m\n",
    )
    assert main(["check", str(config)]) == 1
    out, err = capsys.readouterr()
    assert problem_lines(err) == [
        (str(config), 5, "alerts.resolve_timout", "unknown key (check the spelling; see config.example.yaml)")
    ]
    assert f"{config}: FAILED: 1 problem(s)" in err
    assert "SUCCESS" not in out


def test_check_bad_duration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "storage:\n  flush_interval: 1 second\n")
    assert main(["check", str(config)]) == 1
    [(file, line, key, message)] = problem_lines(capsys.readouterr().err)
    assert (file, line, key) == (str(config), 2, "storage.flush_interval")
    assert "is not a duration" in message


def test_check_duplicate_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "listen: 127.0.0.1:1\ndata_dir: a\nlisten: 127.0.0.1:2\n")
    assert main(["check", str(config)]) == 1
    assert problem_lines(capsys.readouterr().err) == [(str(config), 3, "listen", "duplicate key")]


def test_check_invalid_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "listen: 127.0.0.1:1\ningest: {max_body_bytes: 10\nalerts: {}\n")
    assert main(["check", str(config)]) == 1
    [(file, line, _, message)] = problem_lines(capsys.readouterr().err)
    assert file == str(config)
    assert line >= 2
    assert message.startswith("invalid YAML")


def test_check_unknown_tag_is_a_problem_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "listen: !host 127.0.0.1:1\n")
    assert main(["check", str(config)]) == 1
    [(file, line, _, _)] = problem_lines(capsys.readouterr().err)
    assert (file, line) == (str(config), 1)


def test_check_rules_with_bad_group_by_label(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = write(tmp_path / "rules" / "correlation.yaml", "# rules\ngroup_by:\n  - alertname\n  - 'service name'\n")
    assert main(["check", str(rules)]) == 1
    [(file, line, key, message)] = problem_lines(capsys.readouterr().err)
    assert (file, line, key) == (str(rules), 4, "group_by[1]")
    assert "'service name' is not a label name" in message


def test_check_config_pointing_at_bad_rules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = write(tmp_path / "etc" / "rules" / "correlation.yaml", "group_by: [alertname]\nreopen_window: 30x\n")
    config = write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\n")
    assert main(["check", str(config)]) == 1
    err = capsys.readouterr().err
    [(file, line, key, _)] = problem_lines(err)
    assert (file, line, key) == (str(rules), 2, "reopen_window")
    assert f"{config}: FAILED: 1 problem(s)" in err


def test_check_relative_rules_dir_from_another_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(tmp_path / "etc" / "rules" / "correlation.yaml", "group_by: [alertname, cluster]\n")
    write(tmp_path / "etc" / "itsmd.yaml", "rules_dir: rules\ndata_dir: ../var\n")
    (tmp_path / "cwd" / "rules").mkdir(parents=True)  # a decoy next to the working directory
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["check", "../etc/itsmd.yaml"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"../etc/itsmd.yaml: rules from {(tmp_path / 'etc' / 'rules').resolve()}: SUCCESS" in out.splitlines()


def test_check_reports_every_file_and_fails_if_any_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "{}\n")
    bad = write(tmp_path / "bad.yaml", "listn: x\nalerts:\n  sweep_interval: often\n")
    assert main(["check", str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: SUCCESS" in out.splitlines()
    assert sorted((line, key) for _, line, key, _ in problem_lines(err)) == [(1, "listn"), (3, "alerts.sweep_interval")]
    assert f"{bad}: FAILED: 2 problem(s)" in err


def test_check_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 1
    assert f"{tmp_path / 'nope.yaml'}: cannot read" in capsys.readouterr().err


def test_check_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check"])
    assert caught.value.code == 2
    assert "files" in capsys.readouterr().err


# -- run, up to the point where it would serve -------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:9797", "[::]:9797", "10.1.2.3:9797", "example.com:80"])
def test_run_refuses_non_loopback_listen_without_insecure_listen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, listen: str
) -> None:
    config = write(tmp_path / "itsmd.yaml", "{}\n")
    assert main(["run", "--config", str(config), "--listen", listen, "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert f"refusing to listen on {listen}" in err
    assert "--insecure-listen" in err
    assert not (tmp_path / "data").exists()  # returned before opening the store


def test_run_refuses_non_loopback_listen_from_the_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(tmp_path / "itsmd.yaml", "listen: 0.0.0.0:9797\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "refusing to listen on 0.0.0.0:9797" in capsys.readouterr().err


def test_run_bad_listen_argument(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "{}\n")
    assert main(["run", "--config", str(config), "--listen", "9797"]) == 2
    assert "--listen: '9797' is not HOST:PORT" in capsys.readouterr().err


def test_run_invalid_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "\nshutdown_timeout: forever\n")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert f"{config}:2: shutdown_timeout: " in err


def test_run_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run"])
    assert caught.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"itsmd {__version__}"
