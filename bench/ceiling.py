"""The ceiling: a bare aiohttp server that parses the JSON body of ``POST /api/v2/alerts`` and answers 200.

Nothing is validated or kept, so no single-process asyncio receiver can beat it on the same machine.
Run as its own process: ``python -m bench.ceiling --port PORT``.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


async def post_alerts(request: web.Request) -> web.Response:
    try:
        alerts = json.loads(await request.read())
    except ValueError as exc:
        return web.json_response({"status": "error", "reason": "invalid_json", "error": str(exc)}, status=400)
    if not isinstance(alerts, list):
        return web.json_response(
            {"status": "error", "reason": "invalid_payload", "error": "body must be a JSON array"}, status=400
        )
    return web.Response(text=f'{{"status":"success","accepted":{len(alerts)}}}', content_type="application/json")


async def ok(_: web.Request) -> web.Response:
    return web.Response(text="OK")


def make_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/api/v2/alerts", post_alerts)
    app.router.add_get("/-/ready", ok)
    app.router.add_get("/-/healthy", ok)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
