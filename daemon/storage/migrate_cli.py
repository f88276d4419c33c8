"""`itsmd migrate --config CONFIG --from PATH`: copy an SQLite store into the PostgreSQL database CONFIG names.

Prints one line per table (rows in the source, rows in the copy) and the audit chain's check; exit 0 when the
copy was committed and everything matched, 1 when refused or a check failed (nothing committed), 2 for a
wrong config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.config import load_config
from daemon.errors import ConfigError, StorageError
from daemon.runbook.config import secret_text
from daemon.storage.backends import backend_for
from daemon.storage.migrate import migrate, print_result


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="copy an SQLite store into PostgreSQL (the daemon must be stopped); exit 1 unless all of it matched",
    )
    p.add_argument("--config", type=Path, required=True, help="config whose storage is postgres (the target)")
    p.add_argument(
        "--from", dest="source", type=Path, required=True, help="the SQLite file, or a data folder holding itsmd.db"
    )


def main(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"itsmd migrate: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    storage = loaded.config.storage
    if storage.backend != "postgres" or storage.dsn is None:
        print(
            f"itsmd migrate: {args.config} does not configure PostgreSQL (storage: {{backend: postgres, "
            "dsn_env: ...}}): there is nothing to migrate into",
            file=sys.stderr,
        )
        return 2
    try:
        result = migrate(args.source, backend_for(loaded), secret_text(storage.dsn), loaded.audit_key_file)
    except StorageError as exc:
        print(f"itsmd migrate: {exc}", file=sys.stderr)
        return 1
    print_result(result, sys.stdout)
    if result.ok:
        print(f"OK: copied {sum(n for _, n, _ in result.counts)} rows in {len(result.counts)} tables")
        return 0
    print("FAILED: nothing was committed to the target", file=sys.stdout)
    return 1
