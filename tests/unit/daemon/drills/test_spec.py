from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.drills.spec import load_drills
from daemon.errors import ConfigError

GOOD = """\
drills:
  - name: db-failover
    service: checkout
    runbook: failover-drill
    params: {cluster: main}
    schedule: "0 3 * * 2"
    time_zone: Europe/Berlin
    rto: 5m
    rpo: 1m
    recovery:
      promql: 'up{job="checkout"} == 1'
"""


def test_a_drill_file_loads_and_schedules_in_its_time_zone(tmp_path: Path) -> None:
    path = tmp_path / "drills.yaml"
    path.write_text(GOOD)
    drill = load_drills(path).drills[0]
    assert drill.rto == 300.0 and drill.rpo == 60.0 and drill.recovery.interval == 5.0
    after = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
    fire = drill.trigger().get_next_fire_time(None, after)
    assert fire is not None
    assert fire.astimezone(UTC) == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 03:00 in Berlin, winter time


@pytest.mark.parametrize(
    ("change", "problem", "line", "key"),
    [
        ('schedule: "0 3 * * 2"', 'schedule: "61 3 * * *"', 6, "drills[0].schedule"),
        ("time_zone: Europe/Berlin", "time_zone: Mars/Olympus", 7, "drills[0].time_zone"),
        ("rto: 5m", "rto: 0s", 8, "drills[0].rto"),
        ("      promql: 'up{job=\"checkout\"} == 1'", "      verify: false", 10, "drills[0].recovery"),
        ("name: db-failover", "name: DB Failover", 2, "drills[0].name"),
    ],
)
def test_bad_drills_name_the_line_and_key(tmp_path: Path, change: str, problem: str, line: int, key: str) -> None:
    path = tmp_path / "drills.yaml"
    text = GOOD.replace(change, problem)
    assert text != GOOD
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_drills(path)
    assert [(p.file, p.line, p.key) for p in caught.value.problems] == [(str(path), line, key)]


def test_duplicate_drill_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "drills.yaml"
    path.write_text(GOOD + GOOD.removeprefix("drills:\n"))
    with pytest.raises(
        ConfigError, match=r"drills\[1\].name: drill name 'db-failover' is already used by drills\[0\] at line 2"
    ):
        load_drills(path)
