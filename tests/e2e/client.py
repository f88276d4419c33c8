"""Plain urllib HTTP helpers and a deadline-bound poll loop for the end-to-end tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.2  # seconds between two polls; never a substitute for a deadline


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(method: str, url: str, payload: object = None, timeout: float = 5.0) -> Response:
    """One HTTP request; any HTTP status is returned, only connection errors raise (OSError)."""
    if not url.startswith("http://"):
        raise ValueError(f"only plain http:// URLs are used here, got {url!r}")
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked above)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            return Response(resp.status, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, err.read())


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET that must answer 200 with JSON."""
    resp = request("GET", url, timeout=timeout)
    assert resp.status == 200, f"GET {url} -> HTTP {resp.status}: {resp.text()[:500]}"
    return resp.json()


def post_json(url: str, payload: object, timeout: float = 5.0) -> Any:
    """POST a JSON body that must answer 200 with JSON."""
    resp = request("POST", url, payload, timeout=timeout)
    assert resp.status == 200, f"POST {url} {payload!r} -> HTTP {resp.status}: {resp.text()[:500]}"
    return resp.json()


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy (a non-empty list, True, ...) and return that;
    fail after ``timeout`` seconds.

    ``probe`` may raise OSError (connection refused while a process starts); that counts as "not yet".
    On timeout the message says what was awaited, the last connection error, and ``describe()``.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        try:
            value = probe()
        except OSError as exc:
            value, last_error = None, exc
        else:
            last_error = None
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if last_error is not None:
                message += f"; last connection error: {last_error!r}"
            if describe is not None:
                try:
                    message += f"\n{describe()}"
                except OSError as exc:
                    message += f"\n(could not describe the current state: {exc!r})"
            raise WaitTimeout(message)
        time.sleep(POLL_INTERVAL)


def wait_for(
    fetch: Callable[[], T],
    condition: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> T:
    """``wait_until`` for "fetch this until it looks like that"; returns the first value that matched."""

    def probe() -> T | None:
        value = fetch()
        return value if condition(value) else None

    return wait_until(probe, timeout=timeout, what=what, describe=describe)
