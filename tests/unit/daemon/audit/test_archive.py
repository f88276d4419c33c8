"""`itsmd audit archive`: old events move to a file, the store keeps the rest, and verify still proves both."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daemon.cli import main
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
