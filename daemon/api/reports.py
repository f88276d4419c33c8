"""GET /api/v1/reports/{period}?service=&format=: the service report of a month, built from the store."""

from __future__ import annotations

from aiohttp import web

from daemon.api import answers, keys
from daemon.api.principals import Role
from daemon.api.routes import Ok, Query, Route
from daemon.errors import InvalidInput
from daemon.report import period as periods
from daemon.report.produce import CONTENT_TYPES, report_text
from daemon.report.render import FORMATS

MAX_SERVICE = 128
FORMATS_IN_ORDER = ("json", "md", "html")


async def get_report(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise InvalidInput("invalid_query", f"format must be one of {', '.join(FORMATS)}")
    service = request.query.get("service")
    if service is not None and not 0 < len(service) <= MAX_SERVICE:
        raise InvalidInput("invalid_query", f"service must be 1..{MAX_SERVICE} characters")
    loaded = request.app[keys.CONFIG]
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    time_zone = loaded.config.reports.time_zone
    period = periods.month(request.match_info["period"], time_zone)
    now = request.app[keys.CLOCK].now()
    text = await request.app[keys.READER].run(
        lambda sql: report_text(sql, catalogue, period, now=now, time_zone=time_zone, service=service, fmt=fmt)
    )
    return web.Response(text=text, content_type=CONTENT_TYPES[fmt], charset="utf-8")


ROUTES = [
    Route(
        "GET",
        "/api/v1/reports/{period}",
        get_report,
        "Service report of a calendar month (ISO/IEC 20000-1 9.4), built from the store",
        {
            200: Ok(
                "the report",
                answers.Report,
                media={"text/markdown": {"type": "string"}, "text/html": {"type": "string"}},
            ),
            400: "bad period or query",
            404: "no such service in the catalogue",
        },
        role=Role.VIEWER,
        query=(
            Query("service", {"type": "string"}, "only this catalogue service"),
            Query("format", {"enum": list(FORMATS_IN_ORDER), "default": "json"}, "output format"),
        ),
        path_params={
            "period": {
                "type": "string",
                "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
                "description": "the month, YYYY-MM (days in reports.time_zone)",
            }
        },
        tags=("reports",),
    ),
]
