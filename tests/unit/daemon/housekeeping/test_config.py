"""The `retention:` section: defaults for ISO/IEC 20000 evidence, and clear problems for bad values."""

from __future__ import annotations

from pathlib import Path

from daemon.config import load_config
from daemon.housekeeping.config import DAY, EVIDENCE
from tests.unit.daemon.configfiles import problems, write


def test_defaults_keep_evidence_three_years(tmp_path: Path) -> None:
    retention = load_config(write(tmp_path / "itsmd.yaml", "{}\n")).config.retention
    assert retention.enabled
    assert retention.alerts == 30 * DAY
    for record in ("incidents", "problems", "changes", "runs", "drills"):
        assert retention.period(record) == EVIDENCE >= 3 * 365 * DAY


def test_periods_are_read_as_durations(tmp_path: Path) -> None:
    path = write(tmp_path / "itsmd.yaml", "retention:\n  alerts: 7d\n  incidents: 5y\n  batch_size: 100\n")
    retention = load_config(path).config.retention
    assert (retention.alerts, retention.incidents, retention.batch_size) == (7 * DAY, 5 * 365 * DAY, 100)


def test_bad_values_name_their_key(tmp_path: Path) -> None:
    path = write(tmp_path / "itsmd.yaml", "retention:\n  alerts: 12h\n  batch_size: 0\n  audit: 1d\n")
    found = problems(path)
    keys = {key for _, key, _ in found}
    assert {"retention.alerts", "retention.batch_size", "retention.audit"} <= keys, found
    assert any("whole days" in message for _, _, message in found)
