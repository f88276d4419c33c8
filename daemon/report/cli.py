"""`itsmd report --period 2026-10 [--service S] [--format html|md|json] [--config FILE] [--output FILE]`.

Reads the store (the backend the config names) read-only, so it works with the daemon running or stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from daemon.config import load_config
from daemon.errors import ConfigError, RequestError, StorageError
from daemon.report.produce import produce, write_atomically
from daemon.report.render import FORMATS
from daemon.storage.backends import backend_for
from daemon.storage.reading import connected


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write the service report of a month (ISO/IEC 20000 9.4) from the store")
    p.add_argument("--period", required=True, help="the month, YYYY-MM (for example 2026-10)")
    p.add_argument("--service", help="only this catalogue service (default: every service)")
    p.add_argument("--format", default="html", choices=FORMATS)
    p.add_argument("--config", type=Path, default=Path("config.yaml"), help="config file (default config.yaml)")
    p.add_argument("--data-dir", type=Path, help="folder of the store (default from the config)")
    p.add_argument("--time-zone", help="time zone of the month's days (default: reports.time_zone, UTC)")
    p.add_argument("--output", type=Path, help="write here (atomically) instead of standard output")


def main(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"itsmd: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    tz = args.time_zone or loaded.config.reports.time_zone
    try:
        with connected(backend_for(loaded)) as backend:
            text = produce(
                backend,
                loaded.rules.catalogue,
                args.period,
                now=time.time(),
                time_zone=tz,
                service=args.service,
                fmt=args.format,
            )
    except RequestError as exc:
        print(f"itsmd report: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"itsmd report: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:  # ZoneInfoNotFoundError
        print(f"itsmd report: unknown time zone {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomically(args.output, text)
    return 0
