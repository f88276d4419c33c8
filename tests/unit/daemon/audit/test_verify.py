"""`itsmd audit verify` on stores tampered with in every way the chain is meant to show: each names the first
event that is wrong, and an intact store verifies."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.audit.chain import read_anchor
from daemon.cli import main
from daemon.storage.schema import APPLICATION_ID, MIGRATIONS
from tests.unit.daemon.audit.chained import tamper, write_events

EVENTS = 6
"""Recorded events; with the chain's first event the store holds seq 1..7, ids 1..7."""


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    await write_events(data, EVENTS)
    return data


def verify(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str]]:
    code = main(["audit", "verify", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, (out + err).splitlines()


def test_an_intact_chain_verifies(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(capsys, "--data-dir", data) == (0, ["OK: 7 events, head seq 7"])
    anchor = read_anchor(data / "audit.head")
    assert anchor is not None and anchor.seq == 7
    assert (data / "audit.key").stat().st_mode & 0o777 == 0o600


def test_an_edited_field(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(data / "itsmd.db", "UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
    code, lines = verify(capsys, "--data-dir", data)
    assert code == 1
    assert lines[0] == "event seq 4 (id 4): its mac does not match: edited, or not written with this key"
    assert lines[-1] == "FAILED: 1 finding(s) in 7 events, head seq 7"


@pytest.mark.parametrize(
    "column, value",
    [("at", "at + 0.001"), ("before", "NULL"), ("after", "'{}'"), ("record_id", "'9'"), ("action", "'closed'")],
)
def test_every_field_is_covered(data: Path, capsys: pytest.CaptureFixture[str], column: str, value: str) -> None:
    tamper(data / "itsmd.db", f"UPDATE audit_events SET {column} = {value} WHERE seq = 3")  # noqa: S608
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, "event seq 3 (id 3): its mac does not match: edited, or not written with this key")


def test_a_deleted_event_in_the_middle(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(data / "itsmd.db", "DELETE FROM audit_events WHERE seq = 4")
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[:-1]) == (1, ["event seq 4: missing: the event is deleted"])


def test_deleted_newest_events_fall_short_of_the_anchor(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(data / "itsmd.db", "DELETE FROM audit_events WHERE seq >= 6")
    code, lines = verify(capsys, "--data-dir", data)
    assert code == 1
    assert (
        lines[0]
        == f"event seq 6: missing: events 6..7 are deleted (the anchor {data / 'audit.head'} says the chain reached 7)"
    )


def test_without_the_anchor_a_deleted_tail_is_not_seen_and_verify_says_so(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data / "audit.head").unlink()
    tamper(data / "itsmd.db", "DELETE FROM audit_events WHERE seq = 7")
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (
        1,
        f"no anchor file {data / 'audit.head'}: the newest events could be deleted unnoticed",
    )


def test_an_unreadable_anchor(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data / "audit.head").write_text("seq 7\n")
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, f"the audit anchor {data / 'audit.head'} is not an anchor file")


@pytest.mark.sqlite_only(reason="an SQLite file left at schema version 5")
def test_a_store_older_than_the_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(tmp_path / "itsmd.db", isolation_level=None)
    for version, sql in MIGRATIONS[:5]:
        conn.executescript(f"BEGIN; {sql}; PRAGMA user_version = {version}; COMMIT;")
    conn.close()
    (tmp_path / "audit.key").write_text(os.urandom(32).hex())
    code, lines = verify(capsys, "--data-dir", tmp_path)
    assert (code, lines[0]) == (1, "schema version 5 has no audit chain: start itsmd once to upgrade it")


def test_an_inserted_event(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = "INSERT INTO audit_events (seq, at, actor, record_type, record_id, action, before, after, mac) VALUES "
    tamper(data / "itsmd.db", forged + f"(8, 2000.0, 'mallory', 'incident', '1', 'closed', NULL, NULL, '{'0' * 64}')")
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, "event seq 8 (id 8): its mac does not match: edited, or not written with this key")


def test_an_event_inserted_with_a_taken_sequence_number(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = "SELECT seq, at, 'mallory', record_type, record_id, action, before, after, mac FROM audit_events"
    tamper(
        data / "itsmd.db",
        "DROP INDEX audit_events_seq",
        f"INSERT INTO audit_events (seq, at, actor, record_type, record_id, action, before, after, mac) {copy} WHERE seq = 3",  # noqa: E501
    )
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, "event seq 3 (id 8): a second event of this sequence number: inserted")


def test_an_event_inserted_without_a_mac(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(
        data / "itsmd.db",
        "INSERT INTO audit_events (at, actor, record_type, record_id, action) "
        "VALUES (1.0, 'x', 'incident', '1', 'closed')",
    )
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, "event id 8: no sequence number or mac, written after the chain started: inserted")


def test_two_events_swapped_whole(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(
        data / "itsmd.db",
        "UPDATE audit_events SET id = -3 WHERE id = 3",
        "UPDATE audit_events SET id = 3 WHERE id = 4",
        "UPDATE audit_events SET id = 4 WHERE id = -3",
    )
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (1, "event seq 3 (id 4): stored after event seq 4 (id 3): reordered")


def test_two_events_swapped_keeping_their_numbers(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fields = "at, actor, record_type, record_id, action, before, after"
    swap = ", ".join(f"{f} = (SELECT {f} FROM orig WHERE orig.seq = 7 - audit_events.seq)" for f in fields.split(", "))  # noqa: S608
    tamper(
        data / "itsmd.db",
        "CREATE TEMP TABLE orig AS SELECT * FROM audit_events",
        f"UPDATE audit_events SET {swap} WHERE seq IN (3, 4)",  # noqa: S608
    )
    code, lines = verify(capsys, "--data-dir", data)
    assert code == 1
    assert lines[:2] == [
        "event seq 3 (id 3): its mac does not match: edited, or not written with this key",
        "event seq 4 (id 4): its mac does not match: edited, or not written with this key",
    ]


def test_dropped_triggers(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(data / "itsmd.db")
    conn.execute("DROP TRIGGER audit_events_append_only_delete")
    conn.execute("DROP TRIGGER audit_events_append_only_update")
    conn.commit()
    conn.close()
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[:-1]) == (
        1,
        [
            "trigger audit_events_append_only_update is missing: the table no longer refuses changes",
            "trigger audit_events_append_only_delete is missing: the table no longer refuses changes",
        ],
    )


def test_a_trigger_replaced_by_one_that_does_nothing(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(data / "itsmd.db")
    conn.execute("DROP TRIGGER audit_events_append_only_delete")
    conn.execute("CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events BEGIN SELECT 1; END")
    conn.commit()
    conn.close()
    code, lines = verify(capsys, "--data-dir", data)
    assert code == 1
    assert lines[0].startswith("trigger audit_events_append_only_delete was replaced: ")


def test_another_key_verifies_nothing(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.key"
    other.write_text(os.urandom(32).hex())
    shutil.copy(data / "audit.head", tmp_path / "other.head")
    code, lines = verify(capsys, "--data-dir", data, "--key-file", other)
    assert (code, lines[0]) == (1, "event seq 1 (id 1): its mac does not match: edited, or not written with this key")


def test_usage_errors_exit_2(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(capsys, "--data-dir", data, "--key-file", tmp_path / "none.key") == (
        2,
        [f"itsmd audit verify: no key file {tmp_path / 'none.key'} (--key-file)"],
    )
    assert verify(capsys)[0] == 2
    assert verify(capsys, "--data-dir", tmp_path / "empty")[0] == 2


def test_the_config_names_the_data_dir_and_the_key(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (data / "audit.key").rename(etc / "chain.key")
    (data / "audit.head").rename(etc / "chain.head")
    (etc / "itsmd.yaml").write_text(f"data_dir: {data}\naudit:\n  key_file: chain.key\n")
    assert verify(capsys, "--config", etc / "itsmd.yaml") == (0, ["OK: 7 events, head seq 7"])


def test_verify_only_reads(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def files() -> dict[str, tuple[bytes, int]]:
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in data.iterdir()}

    before = files()
    assert verify(capsys, "--data-dir", data)[0] == 0
    after = files()
    # SQLite opens a WAL database with its shared-memory index even read-only; the log stays empty.
    assert after.pop("itsmd.db-wal", (b"", 0))[0] == b""
    after.pop("itsmd.db-shm", None)
    assert after == before


async def test_events_written_before_the_chain_are_sealed_by_its_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "itsmd.db", isolation_level=None)
    for version, sql in MIGRATIONS[:5]:
        conn.executescript(
            f"BEGIN; {sql}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version}; COMMIT;"
        )
    for i in range(3):
        conn.execute(
            "INSERT INTO audit_events (at, actor, record_type, record_id, action, before, after) "
            "VALUES (?, 'bob', 'incident', '1', 'note', NULL, ?)",
            (500.0 + i, f'{{"text":"old {i}"}}'),
        )
    conn.close()
    await write_events(data, 2)
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines) == (0, ["OK: 6 events, head seq 3"])
    tamper(data / "itsmd.db", "UPDATE audit_events SET actor = 'mallory' WHERE id = 2")
    code, lines = verify(capsys, "--data-dir", data)
    assert (code, lines[0]) == (
        1,
        "the 3 events written before the chain (ids up to 3), sealed when it started, "
        "were changed, deleted or added to",
    )
