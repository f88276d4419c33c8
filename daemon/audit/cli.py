"""`itsmd audit verify|archive`: check the whole audit chain; archive its old events to a file.

Both use the backend the config names (with --data-dir alone, the SQLite file in it).

`verify --data-dir DIR [--config FILE] [--key-file F] [--archive FILE ...]` reads the store read-only, so
it works with the daemon running or stopped. One line per finding, then `OK: N events, head seq S`
(exit 0) or `FAILED: ...` (exit 1); exit 2 when it cannot check (no key file, no store, a wrong config).

`archive --before DATE --out FILE` moves the events before DATE (YYYY-MM-DD or RFC 3339, UTC unless it says)
to FILE and records the cut (daemon/audit/archive.py). It writes one transaction through the backend, so it
can run beside the daemon; exit 0 archived, 1 nothing to archive or the file exists, 2 cannot run.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from daemon.audit import archive
from daemon.audit.chain import anchor_path, load_key
from daemon.audit.verify import check
from daemon.config import load_config
from daemon.errors import ConfigError, InvalidInput, StorageError
from daemon.storage.backends import backend_for
from daemon.storage.database import Database
from daemon.storage.reading import DRIVER_ERRORS, connected, reading
from daemon.storage.sql import Backend

DB_FILE = "itsmd.db"
KEY_FILE = "audit.key"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="check the audit trail's hash chain; archive its old events")
    actions = p.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify", help="check every audit event, the anchor and the triggers; exit 1 if anything is wrong"
    )
    verify.add_argument(
        "--archive",
        type=Path,
        action="append",
        default=[],
        help="an archive `itsmd audit archive` wrote (repeat for each, oldest first): checked against its cut",
    )
    archived = actions.add_parser(
        "archive", help="move events before a date to a file (JSON lines); the chain stays verifiable"
    )
    archived.add_argument("--before", required=True, help="date: YYYY-MM-DD or RFC 3339 (UTC unless it says)")
    archived.add_argument("--out", type=Path, required=True, help="the archive file to write (must not exist)")
    for p in (verify, archived):
        p.add_argument("--data-dir", type=Path, help="folder of the store (default from the config)")
        p.add_argument("--config", type=Path, help="config file, for data_dir and audit.key_file")
        p.add_argument(
            "--key-file", type=Path, help="the audit key (default: audit.key_file, or audit.key in the data dir)"
        )


def _store(args: argparse.Namespace, name: str) -> tuple[Backend, Path] | None:
    """The backend (not opened) and the key file; None (after saying why) when either is missing."""
    backend: Backend
    if args.config is not None:
        try:
            loaded = load_config(args.config, data_dir=args.data_dir)
        except ConfigError as exc:
            print(f"itsmd audit {name}: invalid configuration:\n{exc}", file=sys.stderr)
            return None
        backend, key_file = backend_for(loaded), loaded.audit_key_file
    elif args.data_dir is not None:
        backend, key_file = Database(args.data_dir / DB_FILE), args.data_dir / KEY_FILE
    else:
        print(f"itsmd audit {name}: give --data-dir or --config", file=sys.stderr)
        return None
    key_file = args.key_file or key_file
    if not key_file.is_file():
        print(f"itsmd audit {name}: no key file {key_file} (--key-file)", file=sys.stderr)
        return None
    if isinstance(backend, Database) and not backend.path.is_file():
        print(f"itsmd audit {name}: no store {backend.path} (--data-dir)", file=sys.stderr)
        return None
    return backend, key_file


def main(args: argparse.Namespace) -> int:
    if args.audit_command == "archive":
        return _archive(args)
    found = _store(args, "verify")
    if found is None:
        return 2
    backend, key_file = found
    try:
        key = load_key(key_file)
        with connected(backend), reading(backend) as sql:
            report = check(sql, key, anchor_path(key_file), archives=args.archive)
    except StorageError as exc:
        print(f"itsmd audit verify: {exc}", file=sys.stderr)
        return 2
    for finding in report.findings:
        print(finding)
    if report.ok:
        print(f"OK: {report.events} events, head seq {report.head.seq}")
        return 0
    print(f"FAILED: {len(report.findings)} finding(s) in {report.events} events, head seq {report.head.seq}")
    return 1


def parse_date(text: str) -> float:
    """YYYY-MM-DD (midnight UTC) or an RFC 3339 time; ValueError otherwise."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _archive(args: argparse.Namespace) -> int:
    try:
        before = parse_date(args.before)
    except ValueError:
        print(f"itsmd audit archive: --before {args.before!r} is not a date (YYYY-MM-DD or RFC 3339)", file=sys.stderr)
        return 2
    found = _store(args, "archive")
    if found is None:
        return 2
    backend, key_file = found
    try:
        key = load_key(key_file)
        backend.open()
    except StorageError as exc:
        print(f"itsmd audit archive: {exc}", file=sys.stderr)
        return 2
    try:
        done = archive.archive(backend, key, before, args.out, now=time.time())
    except InvalidInput as exc:
        print(f"itsmd audit archive: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"itsmd audit archive: {exc}", file=sys.stderr)
        return 2
    except DRIVER_ERRORS as exc:
        print(f"itsmd audit archive: cannot read the store {backend.description}: {exc}", file=sys.stderr)
        return 2
    finally:
        backend.close()
    print(f"archived {done.events} events through seq {done.through_seq} to {args.out}")
    return 0
