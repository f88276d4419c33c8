"""`itsmd kit export DIR`: the wiring kit and the schemas come out of the installed package, and work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from daemon import kit
from daemon.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_export_writes_the_kit_and_every_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kit", "export", str(tmp_path / "kit")]) == 0
    written = sorted(str(p.relative_to(tmp_path / "kit")) for p in (tmp_path / "kit").rglob("*") if p.is_file())
    assert written == sorted(kit.contents())
    assert "prometheus/itsmd.rules.yml" in written and "grafana/itsmd-dashboard.json" in written
    assert "schemas/services.schema.json" in written and "schemas/config.schema.json" in written
    assert (tmp_path / "kit/prometheus/itsmd.rules.yml").read_text() == (
        REPO / "integrations/prometheus/itsmd.rules.yml"
    ).read_text()
    assert capsys.readouterr().out.count("wrote ") == len(written)


def test_export_does_not_overwrite_a_tuned_file_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "prometheus" / "itsmd.rules.yml"
    rules.parent.mkdir()
    rules.write_text("# tuned\n")
    assert main(["kit", "export", str(tmp_path)]) == 1
    assert "itsmd.rules.yml exists (use --force" in capsys.readouterr().err
    assert rules.read_text() == "# tuned\n"
    assert not (tmp_path / "grafana").exists(), "nothing is written when a file would be overwritten"
    assert main(["kit", "export", str(tmp_path), "--force"]) == 0
    assert rules.read_text() != "# tuned\n"


def test_the_exported_rules_pass_their_promtool_tests(tmp_path: Path) -> None:
    promtool = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH and $PROMTOOL_BIN is not set (apt-get install prometheus)")
    assert main(["kit", "export", str(tmp_path)]) == 0
    done = subprocess.run(
        [promtool, "test", "rules", "itsmd.rules.test.yml"],
        cwd=tmp_path / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_carries_the_kit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("itsmd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, resource, _ in kit.KIT:
        assert f"{package.replace('.', '/')}/{resource}" in names
