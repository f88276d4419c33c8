"""The console's webhook page: each receiver's backlog and the newest dead letters (read-only)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from daemon.api import keys
from daemon.api.webhooks import OUTBOX
from daemon.console.auth import require_session
from daemon.console.render import page
from daemon.storage.outbox import dead_letters

DEAD_LETTERS_SHOWN = 50


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def show_webhooks(request: web.Request) -> web.StreamResponse:
    session = require_session(request)
    outbox = request.app[OUTBOX]
    depth, oldest = outbox.depth(), outbox.oldest_pending()
    receivers = [
        {"name": name, "url": r.url, "pending": depth.get(name, 0), "oldest": _when(oldest.get(name))}
        for name, r in sorted(outbox.receivers.items())
    ]
    letters = await request.app[keys.READER].run(dead_letters, None, DEAD_LETTERS_SHOWN, 0)
    for letter in letters:
        letter["created"], letter["dead"] = _when(letter["created_at"]), _when(letter["dead_at"])
    return page(request, "webhooks.html.j2", session, title="Webhooks", receivers=receivers, letters=letters)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhooks", show_webhooks)
