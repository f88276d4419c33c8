"""Every error answer is JSON with a reason; no stack trace ever reaches a client.

The one place that maps the exception tree of daemon/errors.py to HTTP: STATUS_OF_CLASS below.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    RateLimited,
    RequestError,
    StoreUnavailable,
    TooLarge,
    Unavailable,
    Unprocessable,
    UpstreamFailed,
)

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
STATUS_OF_CLASS: dict[type[RequestError], int] = {
    RequestError: 400,
    InvalidInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unprocessable: 422,
    RateLimited: 429,
    UpstreamFailed: 502,
    Unavailable: 503,
}


def status_of(exc: RequestError) -> int:
    """The HTTP status of a refusal: that of the nearest class in its MRO that the table names."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF_CLASS:
            return STATUS_OF_CLASS[cls]
    return 400  # unreachable: RequestError itself is in the table


def error_response(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"status": "error", "reason": reason, "error": message}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as exc:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after is not None else None
        return error_response(status_of(exc), exc.reason, exc.message, headers=headers)
    except Overloaded as exc:
        return error_response(503, "queue_full", f"{exc}; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS})
    except StoreUnavailable as exc:
        return error_response(
            503, "store_unavailable", f"{exc}; retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(
            exc.status,
            exc.reason.lower().replace(" ", "_"),
            exc.text or exc.reason,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the itsmd log")
