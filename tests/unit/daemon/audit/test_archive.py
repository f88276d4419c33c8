"""`itsmd audit archive`: old events move to a file, the store keeps the rest, and verify still proves both."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daemon.audit import archive
from daemon.audit.chain import load_key
from daemon.cli import main
from daemon.errors import StorageError
from daemon.storage.database import Batch, Database
from tests.unit.daemon.audit.chained import tamper, write_events

EVENTS = 30
"""Events at 1000.0, 1001.0, ...: the first event (chain start) is the earliest."""


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    await write_events(folder, EVENTS)
    return folder


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    code = main(["audit", *(str(a) for a in args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _stored(data: Path) -> list[tuple[int | None, float]]:
    conn = sqlite3.connect(data / "itsmd.db")
    try:
        return conn.execute("SELECT seq, at FROM audit_events ORDER BY id").fetchall()
    finally:
        conn.close()


def _archive(data: Path, capsys: pytest.CaptureFixture[str], out: Path, before: str) -> tuple[int, str]:
    return _run(capsys, "archive", "--data-dir", data, "--before", before, "--out", out)


def test_archive_then_verify_the_rest_and_the_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = _stored(data)
    out = tmp_path / "audit-1.jsonl"
    code, text = _archive(data, capsys, out, "1970-01-01T00:16:50Z")  # epoch 1010
    assert code == 0, text
    left = _stored(data)
    assert left[0][1] >= 1010.0 and len(left) < len(stored)
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "itsmd-audit-archive/1"
    assert len(lines) - 1 + len(left) == len(stored)  # nothing lost: each event is in the file or the store
    code, text = _run(capsys, "verify", "--data-dir", data)
    assert code == 0, text
    code, text = _run(capsys, "verify", "--data-dir", data, "--archive", out)
    assert code == 0, text
    # A second cut follows the first; both files verify in order.
    second = tmp_path / "audit-2.jsonl"
    assert _archive(data, capsys, second, "1970-01-01T00:17:00Z")[0] == 0  # epoch 1020
    code, text = _run(capsys, "verify", "--data-dir", data, "--archive", out, "--archive", second)
    assert code == 0, text
    code, text = _run(capsys, "verify", "--data-dir", data, "--archive", second, "--archive", out)
    assert code == 1 and "not the archive that follows" in text


def test_an_edited_archive_fails(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "audit.jsonl"
    assert _archive(data, capsys, out, "1970-01-01T00:16:50Z")[0] == 0
    out.write_text(out.read_text().replace("alice", "mallory", 1))
    code, text = _run(capsys, "verify", "--data-dir", data, "--archive", out)
    assert code == 1
    assert "SHA-256" in text and "mac does not match" in text


def test_a_forged_cut_does_not_let_events_go_unnoticed(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(data / "itsmd.db", isolation_level=None)
    try:
        # Without a cut, the delete trigger refuses.
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_events WHERE seq = 2")
        seq, mac, row_id = conn.execute("SELECT seq, mac, id FROM audit_events WHERE seq = 10").fetchone()
        conn.execute("INSERT INTO audit_cuts VALUES (?, ?, ?, 0, 10, 'x', 'not a mac')", (seq, mac, row_id))
        conn.execute("DELETE FROM audit_events WHERE id <= ?", (row_id,))
    finally:
        conn.close()
    code, text = _run(capsys, "verify", "--data-dir", data)
    assert code == 1 and "forged" in text


def test_cuts_cannot_be_changed(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _archive(data, capsys, tmp_path / "a.jsonl", "1970-01-01T00:16:50Z")[0] == 0
    conn = sqlite3.connect(data / "itsmd.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_cuts SET through_id = through_id + 5")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_cuts")
    finally:
        conn.close()
    tamper(data / "itsmd.db", "DROP TRIGGER audit_cuts_append_only_delete")
    code, text = _run(capsys, "verify", "--data-dir", data)
    assert code == 1 and "audit_cuts_append_only_delete" in text


def test_nothing_to_archive_and_no_overwrite(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _archive(data, capsys, tmp_path / "a.jsonl", "1970-01-01")
    assert code == 1 and "no chained event" in text
    existing = tmp_path / "b.jsonl"
    existing.write_text("keep me")
    code, text = _archive(data, capsys, existing, "2030-01-01")
    assert code == 1 and "never overwritten" in text
    assert existing.read_text() == "keep me"
    assert len(_stored(data)) == EVENTS + 1  # the chain start and every event
    code, text = _archive(data, capsys, tmp_path / "c.jsonl", "not a date")
    assert code == 2


class _Racing(Database):
    """A store where another archive (through `before`) commits its cut just before this one writes."""

    def __init__(self, path: Path, key: bytes, other: Path, before: float) -> None:
        super().__init__(path)
        self._other = (key, other, before)

    def write(self, batch: Batch) -> None:
        key, other, before = self._other
        rival = Database(self.path)
        rival.open()
        try:
            archive.archive(rival, key, before, other, now=1.0)
        finally:
            rival.close()
        super().write(batch)


@pytest.mark.parametrize("rival_before", [1005.0, 1020.0], ids=["rival-cuts-less", "rival-cuts-more"])
def test_of_two_archives_at_once_only_one_cuts(data: Path, tmp_path: Path, rival_before: float) -> None:
    key = load_key(data / "audit.key")
    racing = _Racing(data / "itsmd.db", key, tmp_path / "rival.jsonl", rival_before)
    racing.open()
    try:
        with pytest.raises(StorageError, match="not part of the chain, delete it"):
            archive.archive(racing, key, 1010.0, tmp_path / "mine.jsonl", now=2.0)
    finally:
        racing.close()
    sql = Database(data / "itsmd.db").reader()
    try:
        assert [c.through_seq for c in archive.cuts(sql)] == [int(rival_before - 1000.0) + 1]  # seq 1 starts the chain
    finally:
        sql.close()
    # The store and the rival's archive are the whole chain; mine is no part of it.
    assert main(["audit", "verify", "--data-dir", str(data), "--archive", str(tmp_path / "rival.jsonl")]) == 0
