"""`itsmd incidents|problems|changes|runs ...`: the records of a running daemon, through its API.

Tables for people (aligned, coloured only on a terminal), `-o json` for scripts (the API's JSON as it came).
Exit codes, for scripts: 0 done; 1 refused by the daemon (not allowed in the record's state, invalid input);
2 usage error; 3 no such record; 4 not authorised (401/403); 5 daemon unreachable or failing (5xx).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from daemon.records_cli import connect, views
from daemon.records_cli.table import Style, clean, now_utc
from daemon.runbook.cli_run import ApiError, Client, _user

Json = dict[str, Any]
RESOURCES = ("incidents", "problems", "changes", "runs")


@dataclass(frozen=True)
class Action:
    """A state change: POST path (relative to the record) and the body it sends from the parsed arguments."""

    path: str
    help: str
    body: Callable[[argparse.Namespace], Json]
    method: str = "POST"


def _by(args: argparse.Namespace) -> str:
    return str(args.by or _user())


def _reason(args: argparse.Namespace) -> Json:
    return {"by": _by(args), "reason": args.reason}


def _assignment(args: argparse.Namespace) -> Json:
    """--to NAME, --me (the principal of the token you call with, not your login name) or --unassign, and/or
    --team; what is not given stays as it is."""
    body = _reason(args)
    if args.unassign:
        body["assignee"] = None
    elif args.me:
        body["assignee"] = "me"
    elif args.to is not None:
        body["assignee"] = args.to
    if args.team is not None:
        body["team"] = args.team
    return body


INCIDENT_ACTIONS = {
    "ack": Action("acknowledge", "acknowledge an open incident (stops the response clock)", _reason),
    "resolve": Action(
        "resolve",
        "resolve an incident (--force while alerts still fire)",
        lambda a: {**_reason(a), "force": a.force},
    ),
    "close": Action("close", "close a resolved incident (final)", _reason),
    "reopen": Action("reopen", "reopen a resolved incident", _reason),
    "note": Action("notes", "add a note to the timeline", lambda a: {"by": _by(a), "text": a.text}),
    "assign": Action(
        "assign", "assign to someone (--to NAME, --me) or nobody (--unassign), and/or a team", _assignment
    ),
    "external": Action(
        "external",
        "record the incident's ticket in another system (replaces the one recorded before)",
        lambda a: {"by": _by(a), "system": a.system, "key": a.key, "url": a.ticket_url},
        method="PUT",
    ),
}
PROBLEM_ACTIONS = {
    "confirm": Action("confirm", "confirm a candidate problem", _reason),
    "known-error": Action(
        "known_error",
        "record root cause and workaround: the problem becomes a known error",
        lambda a: {
            **_reason(a),
            "root_cause": a.root_cause,
            "workaround": a.workaround,
            **({"runbook": a.runbook} if a.runbook else {}),
        },
    ),
    "resolve": Action("resolve", "resolve a problem", _reason),
}
RUN_ACTIONS = {
    "approve": Action("approve", "approve a run waiting for approval", _reason),
    "reject": Action("reject", "reject a run waiting for approval", _reason),
    "cancel": Action("cancel", "cancel a pending, waiting or held run", _reason),
}
ACTIONS = {"incidents": INCIDENT_ACTIONS, "problems": PROBLEM_ACTIONS, "changes": {}, "runs": RUN_ACTIONS}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incidents = _resource(
        sub,
        "incidents",
        "list, show and act on incidents",
        statuses=["active", "open", "acknowledged", "resolved", "closed", "all"],
    )
    incidents.add_argument(
        "--assignee", help="only incidents assigned to NAME, me (your token's principal) or none (list)"
    )
    incidents.add_argument("--team", help="only incidents of this team (list)")
    _resource(
        sub,
        "problems",
        "list, show and act on problems",
        statuses=["candidate", "confirmed", "known_error", "resolved", "all"],
    )
    changes = _resource(sub, "changes", "list and show change records", statuses=["all", "open", "closed"])
    changes.add_argument("--outcome", help="only changes with this outcome (list)")
    changes.add_argument("--service", help="only changes of this service (list)")
    runs = _resource(sub, "runs", "list, show, approve, reject or cancel runbook runs", statuses=None)
    runs.add_argument("--runbook", help="only runs of this runbook (list)")


def _resource(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str, *, statuses: list[str] | None
) -> argparse.ArgumentParser:
    """The resource's parser; returns the `list` verb's parser for extra filters."""
    resource = sub.add_parser(name, help=text, description=__doc__)
    verbs = resource.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help=f"list {name}, newest first")
    if statuses is not None:
        listing.add_argument("--status", choices=statuses, default=statuses[0], help=f"(default {statuses[0]})")
    else:
        listing.add_argument("--status", default="all", help="all (default), active, or a run status")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100, max 1000)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many")
    show = verbs.add_parser("show", help=f"one of the {name} in full")
    show.add_argument("id", type=int)
    for verb, action in ACTIONS[name].items():
        parser = verbs.add_parser(verb, help=action.help)
        parser.add_argument("id", type=int)
        if verb == "note":
            parser.add_argument("text", help="the note")
        elif verb == "external":
            parser.add_argument("--system", required=True, help="the other system, like jira")
            parser.add_argument("--key", required=True, help="the ticket's id there, like OPS-1234")
            # --url is the daemon's (every verb's connection option), so the ticket's link has its own name.
            parser.add_argument("--ticket-url", required=True, help="the ticket's http(s) URL")
        else:
            parser.add_argument("--reason", default="", help="recorded with the action")
        if name == "incidents" and verb == "resolve":
            parser.add_argument("--force", action="store_true", help="resolve although alerts still fire")
        if verb == "assign":
            who = parser.add_mutually_exclusive_group()
            who.add_argument("--to", metavar="NAME", help="the principal to assign it to")
            who.add_argument("--me", action="store_true", help="assign it to the principal of your token")
            who.add_argument("--unassign", action="store_true", help="assign it to nobody")
            parser.add_argument("--team", help="hand it to this team (one the service catalogue has)")
        if verb == "known-error":
            parser.add_argument("--root-cause", required=True)
            parser.add_argument("--workaround", required=True)
            parser.add_argument("--runbook", help="runbook that applies the workaround")
        parser.add_argument("--by", help="name recorded with the action (default: your login name)")
    for parser in verbs.choices.values():
        connect.add_connection_options(parser)
    return listing


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.verb == "assign" and not (args.to is not None or args.me or args.unassign or args.team is not None):
        print(f"itsmd {args.command} assign: give --to NAME, --me or --unassign, and/or --team TEAM", file=err)
        return connect.EXIT_USAGE
    try:
        client = connect.client(args)
        answer = _call(client, args)
    except ApiError as exc:
        print(f"itsmd {args.command} {args.verb}: {exc}", file=err)
        return connect.exit_code(exc)
    if args.output == "json":
        json.dump(answer, out, indent=2, ensure_ascii=False)
        print(file=out)
        return connect.EXIT_OK
    _show(args, answer, Style.for_stream(out), out)
    return connect.EXIT_OK


def _call(client: Client, args: argparse.Namespace) -> Json:
    base = f"/api/v1/{args.command}"
    if args.verb == "list":
        query: dict[str, str | int] = {"status": args.status, "limit": args.limit, "offset": args.offset}
        for name in ("outcome", "service", "runbook", "assignee", "team"):
            if getattr(args, name, None):
                query[name] = getattr(args, name)
        return client.get(f"{base}?{urllib.parse.urlencode(query)}")
    if args.verb == "show":
        return client.get(f"{base}/{args.id}")
    action = ACTIONS[args.command][args.verb]
    path = f"{base}/{args.id}/{action.path}"
    return client.put(path, action.body(args)) if action.method == "PUT" else client.post(path, action.body(args))


def _show(args: argparse.Namespace, answer: Json, style: Style, out: TextIO) -> None:
    now = now_utc()
    if args.verb == "list":
        records = answer.get(args.command) or []
        if not records:
            print(f"no {args.command}", file=out)
            return
        {
            "incidents": views.incidents_table,
            "problems": views.problems_table,
            "changes": views.changes_table,
            "runs": views.runs_table,
        }[args.command](records, style, out, now)
        return
    if args.verb == "show":
        if args.command == "incidents":
            views.incident_block(answer, style, out, now)
        elif args.command == "problems":
            views.problem_block(answer, style, out)
        elif args.command == "changes":
            views.change_block(answer, style, out)
        else:
            views.run_block(answer, style, out)
        return
    # After an action: one line with the record's new state, as the daemon stored it.
    singular = args.command[:-1]
    if args.verb == "assign":
        who = f"assigned to {clean(answer['assignee'])}" if answer.get("assignee") else "unassigned"
        print(f"{singular} {answer.get('id')}: {who} (team {clean(answer.get('team') or '-')})", file=out)
        return
    print(f"{singular} {answer.get('id')}: {clean(answer.get('status') or answer.get('outcome'))}", file=out)
