"""storage: in the config file (backend, where the DSN comes from, the pool), and `itsmd check` / `itsmd run`
on it: mistakes as file:line: key: message, an unusable database as one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from daemon.cli import main
from daemon.config import load_config
from daemon.storage.backends import backend_for
from daemon.storage.database import Database
from daemon.storage.postgres.backend import PostgresBackend
from tests.unit.daemon.configfiles import problems, write
from tests.unit.daemon.storage.postgres.test_backend import closed_port

REPO = Path(__file__).resolve().parents[5]


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "itsmd.yaml", "{}\n"))
    assert loaded.config.storage.backend == "sqlite"
    backend = backend_for(loaded)
    assert isinstance(backend, Database)
    assert backend.description == str(tmp_path / "data" / "itsmd.db")


def test_postgres_with_the_dsn_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSMD_TEST_DSN", "host=db.example port=5433 dbname=itsmd user=itsmd password=s3cret-pw")
    config = write(
        tmp_path / "itsmd.yaml",
        "storage:\n  backend: postgres\n  dsn_env: ITSMD_TEST_DSN\n  pool: {min: 2, max: 8}\n  connect_timeout: 3s\n",
    )
    loaded = load_config(config)
    assert (loaded.config.storage.pool.min, loaded.config.storage.pool.max) == (2, 8)
    assert loaded.config.storage.connect_timeout == 3.0
    backend = backend_for(loaded)
    assert isinstance(backend, PostgresBackend)
    assert backend.description == "postgresql://itsmd@db.example:5433/itsmd"
    assert "s3cret-pw" not in repr(loaded.config) + loaded.config.model_dump_json()


def test_postgres_with_the_dsn_from_a_file(tmp_path: Path) -> None:
    write(tmp_path / "secrets" / "dsn", "postgresql://itsmd:pw@10.0.0.5/itsmd_prod\n")
    config = write(tmp_path / "itsmd.yaml", "storage:\n  backend: postgres\n  dsn_file: secrets/dsn\n")
    backend = backend_for(load_config(config))
    assert isinstance(backend, PostgresBackend)
    assert backend.description == "postgresql://itsmd@10.0.0.5/itsmd_prod"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "storage:\n  backend: postgres\n",
            (1, "storage", "backend postgres needs dsn_env or dsn_file"),
        ),
        (
            "storage:\n  dsn_file: dsn\n",
            (2, "storage.dsn_file", "only for backend: postgres"),
        ),
        (
            "storage:\n  backend: postgres\n  dsn_env: HOME\n  dsn_file: dsn\n",
            (1, "storage", "set dsn_env or dsn_file, not both"),
        ),
        (
            "storage:\n  backend: postgres\n  dsn_env: ITSMD_TEST_UNSET_DSN\n",
            (3, "storage.dsn_env", "environment variable ITSMD_TEST_UNSET_DSN is not set"),
        ),
        (
            "storage:\n  backend: mysql\n",
            (2, "storage.backend", "'sqlite' or 'postgres'"),
        ),
        (
            "storage:\n  backend: postgres\n  dsn_file: dsn\n  pool:\n    min: 5\n    max: 2\n",
            (4, "storage.pool", "min (5) is above max (2)"),
        ),
        (
            "storage:\n  backend: postgres\n  dsn_file: dsn\n  connect_timeout: -1\n",
            (4, "storage.connect_timeout", ""),
        ),
    ],
)
def test_storage_mistakes_name_their_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: tuple[int, str, str]
) -> None:
    write(tmp_path / "dsn", "host=127.0.0.1\n")
    config = write(tmp_path / "itsmd.yaml", text)
    [(line, key, message)] = problems(config)
    assert (line, key) == expected[:2]
    assert expected[2] in message
    # `itsmd check` prints the same problem as file:line: key: message and fails.
    assert main(["check", str(config)]) == 1
    out = capsys.readouterr()
    assert f"{config}:{line}: {key}: {message}" in (out.out + out.err).splitlines()


def _run(config: Path, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "run",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or line.startswith("itsmd:")]


def test_run_against_an_unreachable_database_exits_with_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "storage:\n  backend: postgres\n  dsn_env: ITSMD_TEST_DSN\n")
    port = closed_port()
    dsn = f"host=127.0.0.1 port={port} dbname=itsmd user=itsmd password=never-shown-pw connect_timeout=2"
    done = _run(config, tmp_path / "data", {"ITSMD_TEST_DSN": dsn})
    assert done.returncode == 1
    [line] = _errors(done.stderr)
    assert f"cannot start: cannot connect to PostgreSQL postgresql://itsmd@127.0.0.1:{port}/itsmd" in line
    assert "refused" in line.lower()
    assert "never-shown-pw" not in done.stderr + done.stdout


def test_run_against_a_foreign_database_exits_with_one_line(tmp_path: Path, postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    config = write(tmp_path / "itsmd.yaml", "storage:\n  backend: postgres\n  dsn_file: dsn\n")
    write(tmp_path / "dsn", postgres_dsn)
    done = _run(config, tmp_path / "data", {})
    assert done.returncode == 1
    [line] = _errors(done.stderr)
    assert "foreign database, refusing to touch it" in line
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall() == [("invoices",)]
