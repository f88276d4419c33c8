"""Where the running daemon is and which credential to show it, for the record commands.

The URL comes from `--url`, else `ITSMD_URL`, else the `listen` (and `tls`) of `--config`, else the default
listen address; the token from `--token-file`, else `ITSMD_TOKEN`. A token is never taken from the command line
itself: it would be visible to every user of the machine in the process list.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from daemon.config import DEFAULT_LISTEN, parse_listen
from daemon.errors import ConfigError
from daemon.runbook.cli_run import DEFAULT_URL, ApiError, Client, _token
from daemon.yamlsource import load_yaml

URL_ENV = "ITSMD_URL"
TOKEN_ENV = "ITSMD_TOKEN"  # noqa: S105 (the name of the variable, not a secret)

EXIT_OK = 0
EXIT_REFUSED = 1
"""The daemon refused the request: not allowed in the record's state (409), invalid (400, 422), too large."""
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
"""401 or 403: no, wrong or insufficient credentials."""
EXIT_UNAVAILABLE = 5
"""The daemon could not be reached, or failed (5xx, including 503 while its store cannot commit)."""


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"the daemon's base URL (default: ${URL_ENV}, the --config listen, {DEFAULT_URL})"
    )
    parser.add_argument("--config", type=Path, help="take the URL from this config's listen address and tls")
    parser.add_argument("--token-file", type=Path, help=f"file holding an API token (default: ${TOKEN_ENV})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="table (default) or json")


def base_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.url:
        return str(args.url)
    if env.get(URL_ENV):
        return env[URL_ENV]
    if args.config is not None:
        return _url_of_config(args.config)
    return DEFAULT_URL


def _url_of_config(path: Path) -> str:
    """Only `listen` and `tls` are read: the config's secrets need not be readable by whoever runs the CLI."""
    try:
        doc = load_yaml(path).data
    except ConfigError as exc:
        raise ApiError(f"--config {path}: {exc}") from None
    settings = doc if isinstance(doc, dict) else {}
    try:
        host, port = parse_listen(str(settings.get("listen", DEFAULT_LISTEN)))
    except ValueError as exc:
        raise ApiError(f"--config {path}: listen: {exc}") from None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a listen address, not a bind: reach it on loopback)
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.get("tls") else "http"
    return f"{scheme}://{shown}:{port}"


def token(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    if args.token_file is not None:
        return _token(args.token_file)
    value = env.get(TOKEN_ENV, "").strip()
    return value or None


def client(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Client:
    env = os.environ if env is None else env
    return Client(base_url(args, env), token(args, env), args.timeout)


def exit_code(error: ApiError) -> int:
    status = error.status
    if status is None or status >= 500:
        return EXIT_UNAVAILABLE
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (401, 403):
        return EXIT_DENIED
    return EXIT_REFUSED
