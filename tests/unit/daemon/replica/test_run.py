"""The replica section of the config, `itsmd check` on it, and `itsmd run` on storage.backend postgres."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psycopg
import pytest

from daemon.cli import main
from daemon.clock import ManualClock
from daemon.config import load_config
from daemon.replica.lease import Lease
from daemon.replica.state import identity
from tests.unit.daemon.configfiles import problems, write
from tests.unit.daemon.ingest.conftest import running, series


@pytest.fixture(autouse=True)
def _restored(process_state_restored: None) -> None:
    """`run` changes the switch interval and signal handlers: put them back after each test."""


POSTGRES = "storage:\n  backend: postgres\n  dsn_file: dsn\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("replica:\n  lease: 6s\n  renew: 3s\n", (3, "replica.renew", "must be less than half of lease")),
        ("replica:\n  name: two words\n", (2, "replica.name", "should match pattern")),
        ("replica:\n  advertise_url: not a url\n", (2, "replica.advertise_url", "URL")),
        (
            f"listen: 0.0.0.0:9797\n{POSTGRES}",
            (1, "replica.advertise_url", "is needed with storage.backend postgres when listening on 0.0.0.0"),
        ),
    ],
)
def test_replica_mistakes_name_their_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: tuple[int, str, str]
) -> None:
    write(tmp_path / "dsn", "host=127.0.0.1\n")
    config = write(tmp_path / "itsmd.yaml", text)
    [(line, key, message)] = problems(config)
    assert (line, key) == expected[:2]
    assert expected[2] in message
    assert main(["check", str(config)]) == 1
    out = capsys.readouterr()
    assert f"{config}:{line}: {key}: {message}" in (out.out + out.err).splitlines()


def test_a_wildcard_listen_with_an_advertised_url_is_fine(tmp_path: Path) -> None:
    write(tmp_path / "dsn", "host=127.0.0.1\n")
    text = f"listen: 0.0.0.0:9797\n{POSTGRES}replica:\n  name: node-a\n  advertise_url: https://node-a.example:9797/\n"
    loaded = load_config(write(tmp_path / "itsmd.yaml", text))
    assert identity(loaded.config) == ("node-a", "https://node-a.example:9797")
    assert (loaded.config.replica.lease, loaded.config.replica.renew) == (6.0, 2.0)


def test_the_default_name_and_url_come_from_the_host_and_the_listen_address(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "itsmd.yaml", "listen: 127.0.0.1:9898\n"))
    assert identity(loaded.config) == (f"{socket.gethostname()}:9898", "http://127.0.0.1:9898")


def test_run_refuses_a_wildcard_listen_given_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "dsn", "host=127.0.0.1\n")
    config = write(tmp_path / "itsmd.yaml", POSTGRES)
    args = ["run", "--config", str(config), "--listen", "0.0.0.0:0", "--insecure-listen"]
    assert main(args) == 2
    assert "replica.advertise_url is needed" in capsys.readouterr().err


async def test_a_single_node_always_leads(tmp_path: Path) -> None:
    config = write(tmp_path / "itsmd.yaml", "replica:\n  name: solo\n")
    async with running(config, tmp_path / "data", ManualClock(start=1_800_000_000.0)) as daemon:
        metrics = await daemon.metrics()
    assert metrics[series("itsmd_leader")] == 1
    assert metrics[series("itsmd_replica_info", replica="solo", role="leader", epoch="")] == 1


def test_a_replica_whose_leader_app_cannot_start_exits_and_releases_the_lease(
    tmp_path: Path, store_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Until the record modules run on PostgreSQL, the leader app refuses it: the replica takes the lease,
    # fails to lead, says why, and gives the lease up at once rather than leaving it to expire.
    write(tmp_path / "dsn", store_dsn)
    config = write(tmp_path / "itsmd.yaml", f"{POSTGRES}replica:\n  name: a\n  lease: 1h\n")
    assert main(["run", "--config", str(config), "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]) == 1
    assert "cannot start" in caplog.text
    with psycopg.connect(store_dsn) as conn:
        row = conn.execute("SELECT epoch, holder, expires_at <= clock_timestamp() FROM leader_lease").fetchone()
    assert row is not None
    assert row[0] == 1
    assert row[1] == "a"
    assert row[2] is True
    assert asyncio.run(_acquire(store_dsn, "b")) == 2  # another replica takes it at once, despite the hour


async def _acquire(dsn: str, name: str) -> int | None:
    lease = Lease(dsn, holder=name, url=f"http://{name}", duration=60.0, margin=1.0, timeout=2.0)
    try:
        return await lease.acquire()
    finally:
        await lease.close()
