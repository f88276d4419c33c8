"""JSON over HTTP to Prometheus-family servers (Prometheus, Alertmanager): one request, one deadline, typed errors.

Errors say whether a retry can help, as Alertmanager's notifiers do: the server's fault or the network's
(5xx, 429, timeouts, refused connections) is retryable; a request the server refuses (4xx) is not and
carries the server's own error text. URLs in messages have their password and query string removed, and
request headers (the bearer token) never appear in any message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from daemon.errors import ItsmdError

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""A query answer larger than this is refused rather than held in memory (a runaway selector)."""
ERROR_TEXT_CHARS = 500
"""How much of a server's error text goes into a message."""


class UpstreamError(ItsmdError):
    """A call to Prometheus or Alertmanager failed.

    ``retryable`` is true when the same call may succeed later (server error, overload, timeout, network);
    ``status`` is the HTTP status when an answer arrived.
    """

    def __init__(self, message: str, retryable: bool, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


def redact_url(url: URL | str) -> str:
    """The URL without password and query string: what may appear in logs, journals and errors."""
    parsed = URL(url) if isinstance(url, str) else url
    if parsed.password is not None:
        parsed = parsed.with_password("xxxxx")
    if parsed.query_string:
        parsed = parsed.with_query(None)
    return str(parsed.with_fragment(None))


def base_url(text: str) -> URL:
    """A server's base URL; a path prefix (``/prometheus`` behind a proxy) is kept, with or without a
    trailing slash. Raises ValueError for anything but an absolute http(s) URL."""
    parsed = URL(text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{redact_url(text)!r} is not an absolute http:// or https:// URL")
    if parsed.query_string or parsed.fragment:
        raise ValueError(f"{redact_url(text)!r}: a base URL takes no query string or fragment")
    return parsed.with_path(parsed.path.rstrip("/") or "/")


def endpoint(base: URL, path: str) -> URL:
    """``path`` (relative, like ``api/v1/query``) under the base URL's path prefix."""
    return base.with_path(base.path.rstrip("/") + "/" + path.lstrip("/"), encoded=False)


def server_error_text(body: bytes) -> str:
    """The error a server sent: Prometheus' ``error`` field, Alertmanager's JSON string, or the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, str):
        text = parsed
    elif isinstance(parsed, dict):
        found = parsed.get("error") or parsed.get("message")
        if isinstance(found, str):
            kind = parsed.get("errorType")
            text = f"{kind}: {found}" if isinstance(kind, str) and kind else found
    text = " ".join(text.split())
    return text[:ERROR_TEXT_CHARS] + ("..." if len(text) > ERROR_TEXT_CHARS else "")


def retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class JsonApi:
    """Requests against one server; ``error`` is the UpstreamError subclass this server's failures raise."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        *,
        name: str,
        error: type[UpstreamError],
        timeout: float,
        headers: Mapping[str, str] | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.session = session
        self.base = base_url(base)
        self.name = name
        self.error = error
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.max_response_bytes = max_response_bytes

    def describe(self, method: str, url: URL) -> str:
        return f"{self.name} {method} {redact_url(url)}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        json_body: object = None,
    ) -> tuple[int, bytes]:
        """Send one request; returns (status, body) for any HTTP answer, raises for network trouble.

        Redirects are not followed: a redirect to another host would carry the bearer token along, and the
        configured URL should be the final one anyway.
        """
        url = endpoint(self.base, path)
        if query:
            url = url.with_query(dict(query))
        what = self.describe(method, url)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.request(
                    method,
                    url,
                    data=dict(form) if form is not None else None,
                    json=json_body,
                    headers=self.headers,
                    allow_redirects=False,
                ) as resp:
                    body = await resp.content.read(self.max_response_bytes + 1)
                    if len(body) > self.max_response_bytes:
                        raise self.error(
                            f"{what}: answer larger than {self.max_response_bytes} bytes; narrow the query",
                            False,
                            status=resp.status,
                        )
                    if 300 <= resp.status < 400:
                        location = redact_url(resp.headers.get("Location", "?"))
                        raise self.error(
                            f"{what}: HTTP {resp.status} redirect to {location}; configure the final URL",
                            False,
                            status=resp.status,
                        )
                    return resp.status, body
        except TimeoutError:
            raise self.error(f"{what}: no answer within {self.timeout:g}s", True) from None
        except aiohttp.ClientError as exc:
            # The exception's text can hold the full URL; name only its kind and the redacted URL.
            raise self.error(f"{what}: {type(exc).__name__}: {_client_error_text(exc)}", True) from None

    def refused(self, method: str, path: str, status: int, body: bytes) -> UpstreamError:
        """The error for a non-2xx answer, with the server's text."""
        what = self.describe(method, endpoint(self.base, path))
        return self.error(f"{what}: HTTP {status}: {server_error_text(body)}", retryable_status(status), status=status)

    def decode(self, method: str, path: str, status: int, body: bytes) -> Any:
        """The JSON of a 2xx answer; a body that is not JSON means a proxy or a wrong URL, not worth a retry."""
        try:
            return json.loads(body)
        except ValueError:
            what = self.describe(method, endpoint(self.base, path))
            raise self.error(
                f"{what}: HTTP {status} answer is not JSON ({server_error_text(body)[:100]!r}); is the URL right?",
                False,
                status=status,
            ) from None


def _client_error_text(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or "connection failed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.message
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    return "request failed"
