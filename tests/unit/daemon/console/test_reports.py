"""The console's reports page against the real app: the month's report under the console's CSP, bad months."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.clock import ManualClock
from tests.unit.daemon.console.test_pages import READ_TOKEN, XSS, alert, login, text
from tests.unit.daemon.console.test_services import START, configure
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running


def report_body(page: str) -> str:
    found = re.search(r'<div class="report">\n(.*?)\n</div>\n</main>', page, re.S)
    assert found is not None
    return found.group(1)


async def api_html(d: Daemon, month: str) -> str:
    async with d.client.get(f"/api/v1/reports/{month}?format=html") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_the_month_defaults_to_the_current_one_and_is_the_reports_html(tmp_path: Path) -> None:
    async with running(configure(tmp_path / "etc"), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        assert (await d.v2([alert(service="checkout")]))[0] == 200
        d.clock.advance(600)
        page = await text(d, "/reports")
        assert 'type="month" id="month" name="month" value="2026-11"' in page
        body = report_body(page)
        assert "<h1>Service report 2026-11 (to date)</h1>" in body
        standalone = await api_html(d, "2026-11")
        # The same report as the file and the API, minus the document around it and its inline <style>.
        assert "<style>" in standalone and "<style" not in page and "style=" not in page
        assert body in standalone
        assert standalone.index(body) > standalone.index("<body>") and standalone.endswith(f"{body}</body>\n</html>\n")
        async with d.client.get("/reports?month=2026-10") as resp:
            assert resp.status == 200 and "unsafe-inline" not in resp.headers["Content-Security-Policy"]
            assert "<h1>Service report 2026-10 (no data)</h1>" in await resp.text()


async def test_hostile_catalogue_strings_in_the_report_are_text(tmp_path: Path) -> None:
    async with running(configure(tmp_path / "etc"), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        page = await text(d, "/reports?month=2026-11")
        assert "alice &#34;&gt;&lt;img" in page
        assert "<script>alert" not in page and "<img src=x" not in page and XSS not in page


async def test_a_bad_month_is_a_message_not_a_server_error(tmp_path: Path) -> None:
    async with running(configure(tmp_path / "etc"), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        for month, said in (
            ("2026-13", "YYYY-MM"),
            ("0000-01", "1970..9998"),
            ("9999-12", "1970..9998"),
            ("<script>", "YYYY-MM"),
            ("x" * 500, "YYYY-MM"),
        ):
            page = await text(d, f"/reports?month={month}", expect=400)
            assert said in page and '<p class="flash bad" role="alert">' in page
            assert '<div class="report">' not in page and "<script>" not in page


async def test_a_viewer_reads_the_reports_page(tmp_path: Path) -> None:
    (tmp_path / "read.token").write_text(READ_TOKEN)
    extra = f"auth:\n  api:\n    read_tokens: [{{token_file: {tmp_path / 'read.token'}}}]\n"
    async with running(configure(tmp_path / "etc", extra), tmp_path / "data", ManualClock(start=epoch(START))) as d:
        await text(d, "/reports", expect=303)
        await login(d, READ_TOKEN)
        assert "Service report 2026-11" in await text(d, "/reports")
