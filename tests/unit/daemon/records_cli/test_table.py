"""Tables, colours and SLA cells: pure functions of the API's JSON."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from daemon.records_cli.table import Style, clean, render, span, width
from daemon.records_cli.views import sla_cell

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def incident(**sla: object) -> dict[str, object]:
    return {"status": "open", "sla": {"respond_target_seconds": 900, **sla}}


def test_sla_cell_says_what_is_left_and_what_is_over() -> None:
    assert sla_cell(incident(respond_by="2026-12-01T12:10:00Z"), "respond", NOW) == ("10m left", None)
    assert sla_cell(incident(respond_by="2026-12-01T12:03:00Z"), "respond", NOW) == ("3m left", "33")
    assert sla_cell(incident(respond_by="2026-12-01T11:55:00Z"), "respond", NOW) == ("overdue 5m", "31")
    assert sla_cell(incident(respond_by="2026-12-01T11:55:00Z", breaches=["respond"]), "respond", NOW)[0] == "BREACHED"
    assert sla_cell(incident(respond_by="2026-12-01T12:10:00Z", paused=True), "respond", NOW)[0] == "paused"
    assert sla_cell({**incident(), "acknowledged_at": "2026-12-01T11:59:00Z"}, "respond", NOW)[0] == "met"
    assert sla_cell(incident(), "resolve", NOW) == ("-", None)


def test_colour_only_on_a_terminal_without_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Style.for_stream(Tty(), {}).colour
    assert not Style.for_stream(Tty(), {"NO_COLOR": "1"}).colour
    assert not Style.for_stream(io.StringIO(), {}).colour


def test_columns_align_with_wide_characters_and_long_titles_are_cut() -> None:
    out = io.StringIO()
    render(["ID", "TITLE"], [[("1", None), ("数据库" * 40, None)], [("22", None), ("ok", None)]], Style(False), out)
    lines = out.getvalue().splitlines()
    assert [line.index(lines[0].split()[1][0]) for line in lines[:1]] == [4]
    assert lines[1].startswith("1   ") and lines[2].startswith("22  ")
    assert width(lines[1][4:]) <= 60 and lines[1].endswith("…")


def test_clean_and_span() -> None:
    assert clean("a\x1b[2Jb\nc") == "a?[2Jb?c"
    assert clean(None) == "-"
    assert [span(s) for s in (5, 125, 3 * 3600 + 300, 50 * 3600)] == ["5s", "2m", "3h05m", "2d02h"]
