"""`itsmd run` refuses to start on a store it cannot use, with a clear message and exit code 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.cli import main


@pytest.fixture(autouse=True)
def _restored(process_state_restored: None) -> None:
    """Every test here runs `run`'s set-up."""


def run(tmp_path: Path, data: Path) -> int:
    config = tmp_path / "itsmd.yaml"
    config.write_text("{}\n")
    return main(["run", "--config", str(config), "--listen", "127.0.0.1:0", "--data-dir", str(data)])


@pytest.mark.sqlite_only(reason="a corrupt SQLite file")
def test_corrupt_database_file_refuses_to_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "itsmd.db").write_bytes(b"\x00garbage" * 512)
    assert run(tmp_path, data) == 1
    assert "cannot start" in caplog.text
    assert "is not a usable itsmd database" in caplog.text
    assert (data / "itsmd.db").read_bytes() == b"\x00garbage" * 512  # left as it was, for forensics


@pytest.mark.sqlite_only(reason="an SQLite file of another program")
def test_foreign_database_refuses_to_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "itsmd.db")
    conn.execute("CREATE TABLE grafana_dashboards (id INTEGER)")
    conn.commit()
    conn.close()
    assert run(tmp_path, data) == 1
    assert "database of some other program" in caplog.text


@pytest.mark.sqlite_only(reason="the folder for the SQLite file cannot be made")
def test_unusable_data_dir_refuses_to_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    assert run(tmp_path, blocker / "data") == 1
    assert "cannot create data directory" in caplog.text
