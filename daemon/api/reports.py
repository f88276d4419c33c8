"""GET /api/v1/reports/{period}?service=&format=: the service report of a month, built from the store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from daemon.api import keys
from daemon.errors import InvalidInput
from daemon.report.produce import CONTENT_TYPES, produce
from daemon.report.render import FORMATS

MAX_SERVICE = 128


async def get_report(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise InvalidInput("invalid_query", f"format must be one of {', '.join(FORMATS)}")
    service = request.query.get("service")
    if service is not None and not 0 < len(service) <= MAX_SERVICE:
        raise InvalidInput("invalid_query", f"service must be 1..{MAX_SERVICE} characters")
    loaded = request.app[keys.CONFIG]
    catalogue = request.app[keys.PIPELINE].correlator.ruleset.catalogue
    text = await asyncio.to_thread(
        produce,
        loaded.db_path,
        catalogue,
        request.match_info["period"],
        now=request.app[keys.CLOCK].now(),
        time_zone=loaded.config.reports.time_zone,
        service=service,
        fmt=fmt,
    )
    return web.Response(text=text, content_type=CONTENT_TYPES[fmt], charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports/{period}", get_report)
