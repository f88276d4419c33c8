"""The output digest key: made once per data directory, private, and refused when it is not a key."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from daemon.errors import ConfigError
from daemon.runbook.digest import KEY_FILE, load_key, output_digest


def test_the_key_is_made_once_with_mode_0600_and_kept(tmp_path: Path) -> None:
    key = load_key(tmp_path / KEY_FILE)
    path = tmp_path / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(key) == 64 and load_key(tmp_path / KEY_FILE) == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left behind
    (tmp_path / "other").mkdir()
    assert load_key(tmp_path / "other" / KEY_FILE) != key


def test_a_digest_verifies_with_openssl_and_the_key_file(tmp_path: Path) -> None:
    key = load_key(tmp_path / KEY_FILE)
    digest = output_digest(key, b"token=abc\n")
    assert digest == "hmac-sha256:" + hmac.new(key, b"token=abc\n", hashlib.sha256).hexdigest()
    assert digest != "hmac-sha256:" + hashlib.sha256(b"token=abc\n").hexdigest()
    # What the README tells an auditor to run.
    shown = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", (tmp_path / KEY_FILE).read_text().strip()],
        input=b"token=abc\n",
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert shown.split()[-1] == digest.removeprefix("hmac-sha256:")


def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short\n")
    with pytest.raises(ConfigError, match="64 lowercase hex characters"):
        load_key(tmp_path / KEY_FILE)
