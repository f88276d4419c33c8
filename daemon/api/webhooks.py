"""The webhook outbox as the API shows it: receivers with their backlog, and dead letters.

Dead letters are read from the store (they leave memory once written); the backlog from memory.
"""

from __future__ import annotations

import json

from aiohttp import web

from daemon.api import answers, keys
from daemon.api.principals import Role
from daemon.api.rest import BAD_QUERY, PAGING, _page
from daemon.api.routes import Ok, Query, Route
from daemon.errors import InvalidInput
from daemon.notify.outbox.outbox import Outbox
from daemon.storage.outbox import dead_letters
from daemon.storage.timestamps import rfc3339

OUTBOX = web.AppKey("outbox", Outbox)


async def list_receivers(request: web.Request) -> web.Response:
    outbox = request.app[OUTBOX]
    depth, oldest = outbox.depth(), outbox.oldest_pending()
    receivers = [
        {
            "name": r.name,
            "url": r.url,
            "events": [e.value for e in r.events],
            "pending": depth.get(r.name, 0),
            "oldest_pending_at": rfc3339(oldest.get(r.name)),
        }
        for r in outbox.receivers.values()
    ]
    return web.json_response({"receivers": receivers})


async def list_dead_letters(request: web.Request) -> web.Response:
    limit, offset = _page(request)
    receiver = request.query.get("receiver")
    if receiver is not None and receiver not in request.app[OUTBOX].receivers:
        raise InvalidInput("invalid_query", f"no webhook receiver {receiver!r}")
    found = await request.app[keys.READER].run(dead_letters, receiver, limit, offset)
    for letter in found:
        letter["created_at"] = rfc3339(letter["created_at"])
        letter["dead_at"] = rfc3339(letter["dead_at"])
        letter["body"] = json.loads(letter["body"])
    return web.json_response({"dead_letters": found})


ROUTES = [
    Route(
        "GET",
        "/api/v1/webhooks",
        list_receivers,
        "Webhook receivers with their backlog",
        {200: Ok("receivers", answers.WebhookReceivers)},
        role=Role.VIEWER,
        tags=("webhooks",),
    ),
    Route(
        "GET",
        "/api/v1/webhooks/dead-letters",
        list_dead_letters,
        "Webhook events given up on after their receiver's max_age, newest first",
        {200: Ok("dead letters", answers.DeadLetters), 400: BAD_QUERY},
        role=Role.VIEWER,
        query=(Query("receiver", {"type": "string"}, "only this receiver's"), *PAGING),
        tags=("webhooks",),
    ),
]
