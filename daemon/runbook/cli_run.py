"""`itsmd runbook run|approve|reject|cancel`: the running daemon's runs API from a terminal.

It talks HTTP to the daemon (never to the store), so what it shows is exactly what the API returns. Progress
is plain text, one line per step transition, so it reads the same in a terminal, a CI log or a pipe.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

DEFAULT_URL = "http://127.0.0.1:9797"
POLL_INTERVAL = 0.5
TERMINAL = frozenset(
    {"succeeded", "failed", "rolled_back", "rollback_failed", "aborted", "rejected", "cancelled", "skipped", "held"}
)
Json = dict[str, Any]


class ApiError(Exception):
    """The daemon refused the request or could not be reached; the message says which and why, `status` is
    the HTTP status of a refusal (None when there was no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runbook = sub.add_parser("runbook", help="start, watch, approve, reject or cancel runbook runs")
    verbs = runbook.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="start a run and follow its steps until it ends")
    run.add_argument("name", help="runbook name")
    run.add_argument("--param", action="append", default=[], metavar="K=V", help="a parameter (repeatable)")
    run.add_argument("--dry-run", action="store_true", help="print the rendered plan; change nothing")
    run.add_argument("--emergency", action="store_true", help="an emergency change (needs --reason)")
    run.add_argument("--reason", default="", help="why: recorded on the run and its change")
    run.add_argument("--service", help="service the change is made on (for change correlation)")
    run.add_argument("--no-follow", action="store_true", help="print the run id and return at once")
    for name, text in (
        ("approve", "approve a run waiting for approval"),
        ("reject", "reject a run waiting for approval"),
        ("cancel", ""),
    ):
        verb = verbs.add_parser(name, help=text or "cancel a pending, waiting or held run")
        verb.add_argument("id", type=int, help="run id")
        verb.add_argument("--reason", default="", help="recorded with the decision")
    for verb in verbs.choices.values():
        verb.add_argument("--url", default=DEFAULT_URL, help=f"the daemon's base URL (default {DEFAULT_URL})")
        verb.add_argument("--token-file", type=Path, help="file holding an API token (its principal is who acts)")
        verb.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
        verb.add_argument("--by", help="whom you act for (default: your login name); recorded as on_behalf_of")


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        client = Client(args.url, _token(args.token_file), args.timeout)
        if args.verb == "run":
            return _run(client, args, out)
        run = client.post(f"/api/v1/runs/{args.id}/{args.verb}", {"by": args.by or _user(), "reason": args.reason})
        print(f"run {run['id']} ({run['runbook']}): {run['status']}{_because(run)}", file=out)
        return 0
    except ApiError as exc:
        print(f"itsmd runbook {args.verb}: {exc}", file=err)
        return 1


def _run(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    params = _params(args.param)
    body: Json = {
        "runbook": args.name,
        "params": params,
        "dry_run": args.dry_run,
        "emergency": args.emergency,
        "reason": args.reason,
        "by": args.by or _user(),
    }
    if args.service:
        body["service"] = args.service
    answer = client.post("/api/v1/runs", body)
    if args.dry_run:
        print(f"dry run of {args.name}: nothing was executed\n", file=out)
        print(yaml.safe_dump(answer.get("plan", answer), sort_keys=False, allow_unicode=True).rstrip(), file=out)
        return 0
    print(f"run {answer['id']} of {answer['runbook']} started ({answer['status']})", file=out)
    if args.no_follow:
        return 0
    final = follow(client, int(answer["id"]), out)
    return 0 if final["status"] == "succeeded" else 1


def follow(
    client: Client,
    run_id: int,
    out: TextIO,
    *,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> Json:
    """Poll the run until it ends, printing one line per run or step transition; returns the final run."""
    progress = Progress(out)
    while True:
        run = client.get(f"/api/v1/runs/{run_id}")
        progress.show(run)
        if run["status"] in TERMINAL:
            progress.finish(run)
            return run
        sleep(interval)


@dataclass
class Progress:
    out: TextIO

    def __post_init__(self) -> None:
        self._seen: dict[tuple[int, str], tuple[str, int]] = {}
        self._status = ""

    def show(self, run: Json) -> None:
        for step in run.get("steps", []):
            key = (int(step["index"]), str(step["phase"]))
            state = (str(step["status"]), int(step.get("attempts") or 0))
            if self._seen.get(key) == state:
                continue
            self._seen[key] = state
            self._line(_step_line(step))
        if run["status"] != self._status and run["status"] not in TERMINAL:
            self._status = run["status"]
            self._line(f"run {run['id']}: {run['status']}{_because(run)}")

    def finish(self, run: Json) -> None:
        took = run.get("duration_seconds")
        took_text = f" in {took:.2f}s" if isinstance(took, int | float) else ""
        change = f", change {run['change_id']}" if run.get("change_id") is not None else ""
        self._line(f"run {run['id']} {run['status']}{took_text}{change}{_because(run)}")

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {text}", file=self.out, flush=True)


def _step_line(step: Json) -> str:
    phase = "" if step["phase"] == "do" else f" [{step['phase']}]"
    action = f" ({step['action']})" if step.get("action") else ""
    text = f"step {int(step['index']) + 1} {step['name']}{action}{phase}: {step['status']}"
    attempts = int(step.get("attempts") or 0)
    if attempts > 1:
        text += f", attempt {attempts}"
    took = step.get("duration_seconds")
    if isinstance(took, int | float):
        text += f" in {took:.2f}s"
    if step.get("summary"):
        text += f": {step['summary']}"
    return text


def _because(run: Json) -> str:
    return f": {run['reason']}" if run.get("reason") else ""


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ApiError(f"--param {pair!r}: use NAME=VALUE")
        if name in params:
            raise ApiError(f"--param {name} given twice")
        params[name] = value
    return params


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiError(f"--token-file {path}: cannot read it: {exc}") from None
    if not token:
        raise ApiError(f"--token-file {path} is empty")
    return token


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


class Client:
    """Blocking JSON over HTTP(S) with urllib: the CLI does one thing at a time."""

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ApiError(f"--url {base_url!r}: use http:// or https://")
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def get(self, path: str) -> Json:
        return self._call("GET", path, None)

    def post(self, path: str, body: Json) -> Json:
        return self._call("POST", path, body)

    def put(self, path: str, body: Json) -> Json:
        return self._call("PUT", path, body)

    def _call(self, method: str, path: str, body: Json | None) -> Json:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._base + path, data=data, method=method)  # noqa: S310 (scheme checked)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._token is not None:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:  # noqa: S310 (scheme checked)
                answer: Json = json.loads(resp.read())
                return answer
        except urllib.error.HTTPError as exc:
            with exc:
                raise ApiError(_refusal(exc.code, exc.read()), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach itsmd at {self._base}: {reason}") from None
        except ValueError as exc:
            raise ApiError(f"{method} {path}: the answer is not JSON: {exc}") from None


def _refusal(status: int, raw: bytes) -> str:
    try:
        body = json.loads(raw)
        return f"HTTP {status} {body['reason']}: {body['error']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"
