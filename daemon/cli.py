"""Command line: `itsmd run`, `itsmd check`, `itsmd schema`, `itsmd runbook`, `itsmd drill`, `itsmd report`,
`itsmd audit`, `itsmd migrate`, and `itsmd incidents|problems|changes|runs` against a running daemon.
Thin: parsing, logging, signals; the app does the rest."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from daemon import __version__, checkfiles, explain, kit, records_cli, schemas
from daemon.app import create_app, load_library
from daemon.audit import cli as audit_cli
from daemon.config import LoadedConfig, is_loopback, load_config, parse_listen, unreachable_replica
from daemon.drills import cli as drill_cli
from daemon.errors import ConfigError, StorageError
from daemon.reload import RELOADER
from daemon.replica.supervisor import for_config as supervisor_for
from daemon.report import cli as report_cli
from daemon.runbook import cli_run
from daemon.storage import migrate_cli
from daemon.storage.backends import backend_for

log = logging.getLogger("itsmd")
SWITCH_INTERVAL = 0.0005


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itsmd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"itsmd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", type=Path, required=True, help="config file (YAML)")
    run.add_argument("--listen", help="HOST:PORT to listen on (default from the config: 127.0.0.1:9797)")
    run.add_argument("--data-dir", type=Path, help="folder for the SQLite store (default from the config)")
    run.add_argument(
        "--insecure-listen",
        action="store_true",
        help="allow a non-loopback listen address although the ingest endpoints need no credentials "
        "(auth.ingest is not configured)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = sub.add_parser(
        "check", help="validate config, rule and runbook files (or a runbooks folder); exit 1 on any problem"
    )
    check.add_argument("files", nargs="+", type=Path)
    schema = sub.add_parser("schema", help="print the JSON Schema of a file format, for editors")
    schema.add_argument(
        "kind", choices=list(schemas.KINDS), help="; ".join(f"{k}: {text}" for k, (text, _) in schemas.KINDS.items())
    )
    cli_run.add_parser(sub)
    drill_cli.add_parser(sub)
    explain.add_parser(sub)
    report_cli.add_parser(sub)
    records_cli.add_parsers(sub)
    kit.add_parser(sub)
    audit_cli.add_parser(sub)
    migrate_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return check(args.files)
    if args.command == "schema":
        print(schemas.render(args.kind), end="")
        return 0
    if args.command == "kit":
        return kit.main(args)
    if args.command == "runbook":
        return cli_run.main(args)
    if args.command == "drill":
        return drill_cli.main(args)
    if args.command == "explain":
        return explain.main(args, time.time())
    if args.command == "report":
        return report_cli.main(args)
    if args.command in records_cli.RESOURCES:
        return records_cli.main(args)
    if args.command == "audit":
        return audit_cli.main(args)
    if args.command == "migrate":
        return migrate_cli.main(args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        loaded = load_config(args.config, listen=args.listen, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"itsmd: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"itsmd: --listen: {exc}", file=sys.stderr)
        return 2
    cfg = loaded.config
    host, port = parse_listen(cfg.listen)
    if not is_loopback(host):
        if not cfg.auth.ingest.enabled and not args.insecure_listen:
            print(
                f"itsmd: refusing to listen on {cfg.listen}: auth.ingest is not configured, so anyone who can "
                "reach it could post alerts. Configure auth.ingest (a bearer token or basic auth, see "
                "config.example.yaml), listen on 127.0.0.1, or pass --insecure-listen if a proxy or firewall in "
                "front of itsmd controls who reaches it.",
                file=sys.stderr,
            )
            return 2
        if not cfg.auth.api_enabled:
            log.warning(
                "the REST API needs no token (auth.api, auth.proxy): anyone who can reach %s can read and change it",
                cfg.listen,
            )
        if not cfg.tls.enabled and (cfg.auth.ingest.enabled or cfg.auth.api_enabled):
            log.warning("no tls configured: credentials sent to %s travel in clear text", cfg.listen)
    try:
        ssl_context = cfg.tls.server_context()
    except (ssl.SSLError, OSError) as exc:
        print(f"itsmd: tls: cannot use the certificate and key: {exc}", file=sys.stderr)
        return 1
    # The writer thread needs the GIL back after every SQLite call; with the default 5 ms switch interval a
    # busy event loop makes each commit wait for several of them (measured: 75-120 ms for one-alert commits
    # under load). A shorter interval hands it over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL)
    problem = unreachable_replica(cfg)  # again: --listen may have changed the address
    if problem is not None:
        print(f"itsmd: replica.advertise_url {problem}", file=sys.stderr)
        return 2
    try:
        if cfg.storage.backend == "postgres":
            load_library(loaded)  # wrong runbooks stop it now, not when it first leads
            asyncio.run(_serve_replica(loaded, host, port, ssl_context))
        else:
            asyncio.run(_serve(create_app(loaded), host, port, cfg.shutdown_timeout, ssl_context))
    except StorageError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except ConfigError as exc:  # a runbook file (loaded with the app) is wrong
        print(f"itsmd: invalid runbooks:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s: %s", loaded.config.listen, exc.strerror or exc)
        return 1
    return 0


async def _serve(
    app: web.Application, host: str, port: int, shutdown_timeout: float, ssl_context: ssl.SSLContext | None = None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Handled from the start: SIGHUP's default action would kill a daemon that is still starting.
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(app))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context)
        await site.start()
        scheme = "https" if ssl_context is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        log.info("itsmd %s listening on %s://%s:%d", __version__, scheme, shown, port)
        await stop.wait()
        log.info("stopping: draining requests (deadline %.0fs)", shutdown_timeout)
    finally:
        await runner.cleanup()
        log.info("stopped")


async def _serve_replica(loaded: LoadedConfig, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
    """One of several replicas on PostgreSQL: the store is checked (and migrated) once, then the role loop
    serves the leader or the follower app on the listen address until SIGTERM."""
    backend = backend_for(loaded)
    await asyncio.to_thread(backend.open)  # unreachable or foreign: "cannot start", as for a single node
    await asyncio.to_thread(backend.close)
    supervisor = supervisor_for(loaded, host, port, ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, supervisor.reload)
    log.info("itsmd %s starting as replica %s (%s)", __version__, supervisor.state.name, supervisor.state.url)
    await supervisor.run(stop)
    log.info("stopped")


def _reload(app: web.Application) -> None:
    if RELOADER in app:
        app[RELOADER].trigger()
    else:
        log.warning("SIGHUP while starting: not reloading (the rules are being loaded anyway)")


def check(files: Sequence[Path]) -> int:
    """Validate files like `promtool check config`: one line per problem, exit 1 if any."""
    return checkfiles.check(files, sys.stdout, sys.stderr)
