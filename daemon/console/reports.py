"""The console's reports page: a month picker and the service report of that month.

The report is the one the API and the monthly files give (daemon.report, the same store read), in its
HTML form without the file's inline <style>: the console's Content-Security-Policy allows none, so console.css
styles it here. The standalone HTML report is unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from markupsafe import Markup

from daemon.api import keys
from daemon.console.auth import require_session
from daemon.console.render import page
from daemon.errors import RequestError
from daemon.report import period as periods
from daemon.report.produce import report_text
from daemon.report.render import HTML_BODY

MAX_MONTH = 16


async def show_report(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    now = request.app[keys.CLOCK].now()
    month = request.query.get("month", "").strip()[:MAX_MONTH] or datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
    loaded = request.app[keys.CONFIG]
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    body: Markup | None = None
    problem = ""
    try:
        time_zone = loaded.config.reports.time_zone
        period = periods.month(month, time_zone)
        text = await request.app[keys.READER].run(
            lambda sql: report_text(sql, catalogue, period, now=now, time_zone=time_zone, fmt=HTML_BODY)
        )
        # The report's own template escaped every value from config and alerts (autoescape, as here).
        body = Markup(text)  # noqa: S704
    except RequestError as exc:
        problem = exc.message
    response = page(
        request,
        "reports.html.j2",
        session,
        title=f"Report {month}",
        month=month,
        body=body,
        problem=problem,
        time_zone=loaded.config.reports.time_zone,
    )
    if problem:
        response.set_status(400)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", show_report, name="console-reports")
