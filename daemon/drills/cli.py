"""`itsmd drill run NAME`: start a drill on the running daemon, follow its runbook run, print the result.

Exit 0 only when the drill passed; 1 for failed, skipped, error, or a refusal (e.g. 409: a drill of the
service is running).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from daemon.runbook.cli_run import DEFAULT_URL, POLL_INTERVAL, ApiError, Client, Progress, _token, _user

Json = dict[str, Any]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drill = sub.add_parser("drill", help="run a continuity drill now and wait for its result")
    verbs = drill.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="start a drill and wait for its result (exit 0 only when it passed)")
    run.add_argument("name", help="drill name (from rules/drills.yaml)")
    run.add_argument("--url", default=DEFAULT_URL, help=f"the daemon's base URL (default {DEFAULT_URL})")
    run.add_argument("--token-file", type=Path, help="file holding an API write token")
    run.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    run.add_argument("--by", help="on whose behalf (default: your login name); the actor is the token's principal")


def main(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        client = Client(args.url, _token(args.token_file), args.timeout)
        result = run_drill(client, args.name, args.by or _user(), out, sleep=sleep)
    except ApiError as exc:
        print(f"itsmd drill {args.verb}: {exc}", file=err)
        return 1
    return 0 if result["outcome"] == "passed" else 1


def run_drill(client: Client, name: str, by: str, out: TextIO, *, sleep: Callable[[float], None]) -> Json:
    path = f"/api/v1/drills/{urllib.parse.quote(name, safe='')}"
    started = client.post(f"{path}/run", {"by": by})
    if started["run_id"] is None:  # it ended at once (skipped, error): the result line says why
        print(f"drill {name}: drill run {started['id']}, no runbook run started", file=out)
    else:
        print(f"drill {name}: drill run {started['id']} started (runbook run {started['run_id']})", file=out)
    progress = Progress(out)
    while True:
        drill = client.get(path)
        current = next(
            (d for d in (drill["last"], drill["running"]) if d is not None and d["id"] == started["id"]), None
        )
        if current is not None and current["run_id"] is not None:
            progress.show(client.get(f"/api/v1/runs/{current['run_id']}"))
        if current is None or current["outcome"] != "running":
            final = current or started
            print(_result_line(name, final), file=out)
            return final
        sleep(POLL_INTERVAL)


def _result_line(name: str, d: Json) -> str:
    recovery = d.get("recovery_seconds")
    measured = f", recovery {recovery:.1f}s (RTO {d['rto_seconds']:.0f}s)" if recovery is not None else ""
    return f"drill {name}: {d['outcome']}{measured}: {d['reason']}"
