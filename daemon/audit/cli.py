"""`itsmd audit verify --data-dir DIR [--config FILE] [--key-file F]`: check the whole audit chain.

Reads the store read-only (the backend the config names; with --data-dir alone, the SQLite file in it), so
it works with the daemon running or stopped. One line per finding, then
`OK: N events, head seq S` (exit 0) or `FAILED: ...` (exit 1); exit 2 when it cannot check (no key file,
no store, a wrong config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.audit.chain import anchor_path, load_key
from daemon.audit.verify import check
from daemon.config import load_config
from daemon.errors import ConfigError, StorageError
from daemon.storage.backends import backend_for
from daemon.storage.database import Database
from daemon.storage.reading import connected, reading
from daemon.storage.sql import Backend

DB_FILE = "itsmd.db"
KEY_FILE = "audit.key"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="check the audit trail's hash chain")
    actions = p.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify", help="check every audit event, the anchor and the triggers; exit 1 if anything is wrong"
    )
    verify.add_argument("--data-dir", type=Path, help="folder of the store (default from the config)")
    verify.add_argument("--config", type=Path, help="config file, for data_dir and audit.key_file")
    verify.add_argument(
        "--key-file", type=Path, help="the audit key (default: audit.key_file, or audit.key in the data dir)"
    )


def main(args: argparse.Namespace) -> int:
    backend: Backend
    if args.config is not None:
        try:
            loaded = load_config(args.config, data_dir=args.data_dir)
        except ConfigError as exc:
            print(f"itsmd audit verify: invalid configuration:\n{exc}", file=sys.stderr)
            return 2
        backend, key_file = backend_for(loaded), loaded.audit_key_file
    elif args.data_dir is not None:
        backend, key_file = Database(args.data_dir / DB_FILE), args.data_dir / KEY_FILE
    else:
        print("itsmd audit verify: give --data-dir or --config", file=sys.stderr)
        return 2
    key_file = args.key_file or key_file
    if not key_file.is_file():
        print(f"itsmd audit verify: no key file {key_file} (--key-file)", file=sys.stderr)
        return 2
    if isinstance(backend, Database) and not backend.path.is_file():
        print(f"itsmd audit verify: no store {backend.path} (--data-dir)", file=sys.stderr)
        return 2
    try:
        key = load_key(key_file)
        with connected(backend), reading(backend) as sql:
            report = check(sql, key, anchor_path(key_file))
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
