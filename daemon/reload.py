"""Reloading while running (`POST /-/reload` and SIGHUP): rules/ (services, correlation, priority), the
runbooks, and the config file's auth section with every secret it names (env and files) read again.

A reload reads and validates all of them first and swaps them in only when all are valid; otherwise the daemon
keeps running on the last good rules, runbooks and credentials, logs the problems (file:line: key: message) and
`itsmd_config_last_reload_successful` turns 0, as in Prometheus. The rest of the config file (listen address,
storage, TLS, ...) is read at start only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.api import answers
from daemon.api.auth import Authenticator
from daemon.api.errors import error_response
from daemon.api.principals import Role, principal_of
from daemon.api.routes import Ok, Route
from daemon.clock import Clock
from daemon.config import AuthConfig, load_auth
from daemon.correlate.incidents import Correlator
from daemon.correlate.ruleset import RuleSet, load_rules
from daemon.errors import ConfigError, ConfigProblem
from daemon.runbook.library import RunbookLibrary

log = logging.getLogger(__name__)
SIGNAL = "SIGHUP"
"""Who asked for a reload that came by signal: whoever could send it, which the daemon cannot tell."""


class Reloader(Collector):
    def __init__(
        self,
        rules_dir: Path | None,
        correlator: Correlator,
        clock: Clock,
        *,
        runbooks: tuple[Path, RunbookLibrary] | None = None,
        auth: tuple[Path, Authenticator] | None = None,
    ) -> None:
        self._rules_dir = rules_dir
        self._auth = auth
        """The config file whose auth section is read again, and the credentials it replaces."""
        self._runbooks = runbooks
        self._correlator = correlator
        self._clock = clock
        self._lock = asyncio.Lock()
        self._signalled = asyncio.Event()
        self.successful = True
        self.last_success = clock.now()
        self.reloads = 0
        self.listeners: list[Callable[[RuleSet], None]] = []
        """Told of each new rule set once it is in use (the drill schedule follows rules/drills.yaml)."""
        self.runbook_listeners: list[Callable[[RunbookLibrary], None]] = []
        """Told once reloaded runbooks are in use (their metrics series)."""

    async def reload(self, requested_by: str = SIGNAL) -> list[ConfigProblem]:
        """Reload now, for `requested_by` (the API's principal, or SIGHUP); the problems found (empty: the new
        rules are in use)."""
        async with self._lock:
            log.info("reload requested by %s", requested_by)
            self.reloads += 1
            problems: list[ConfigProblem] = []
            rules: RuleSet | None = None
            library: RunbookLibrary | None = None
            if self._rules_dir is not None:
                try:
                    rules = await asyncio.to_thread(load_rules, self._rules_dir)
                except ConfigError as exc:
                    problems += exc.problems
            if self._runbooks is not None:
                try:
                    library = await asyncio.to_thread(RunbookLibrary.load_configured, self._runbooks[0])
                except ConfigError as exc:
                    problems += exc.problems
            credentials: AuthConfig | None = None
            if self._auth is not None:
                credentials, auth_problems = await self._read_auth(*self._auth)
                problems += auth_problems
            if problems:
                # All or nothing: rules and runbooks refer to each other (drills, triggers), and one answer
                # says whether the whole reload took effect.
                self.successful = False
                log.error(
                    "reload failed, keeping the last good rules, runbooks and credentials:\n%s",
                    "\n".join(str(p) for p in problems),
                )
                return problems
            if credentials is not None and self._auth is not None:
                # No await from the check to here: requests in flight keep the set they started with, the next
                # ones get the new set; none sees neither.
                self._auth[1].replace(credentials)
            # Runbooks first: the new drills may name a runbook that only now exists.
            if library is not None and self._runbooks is not None:
                self._runbooks[1].replace(library)
                for on_runbooks in self.runbook_listeners:
                    on_runbooks(self._runbooks[1])
                log.info("reloaded runbooks from %s: %d runbooks", self._runbooks[0], len(library.runbooks))
            if rules is not None:
                self._correlator.set_rules(rules, self._clock.now())
                for listener in self.listeners:
                    listener(rules)
                log.info(
                    "reloaded rules from %s: %d services, %d correlation rules, %d drills",
                    self._rules_dir,
                    len(rules.catalogue.services),
                    len(rules.correlation.rules),
                    len(rules.drills),
                )
            self.successful, self.last_success = True, self._clock.now()
            return []

    @staticmethod
    async def _read_auth(path: Path, authenticator: Authenticator) -> tuple[AuthConfig | None, list[ConfigProblem]]:
        try:
            config = await asyncio.to_thread(load_auth, path)
        except ConfigError as exc:
            return None, exc.problems
        refused = [ConfigProblem(str(path), None, "auth", message) for message in authenticator.refusals(config)]
        return (None, refused) if refused else (config, [])

    def trigger(self) -> None:
        """For a signal handler: ask the watcher task to reload."""
        self._signalled.set()

    async def watch(self) -> None:
        """Reload whenever trigger() was called (SIGHUP). Runs as a registered task."""
        while True:
            await self._signalled.wait()
            self._signalled.clear()
            await self.reload()

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "itsmd_config_last_reload_successful",
            "1 if the last reload (rules, runbooks, credentials) succeeded (else the last good ones are in use).",
            value=int(self.successful),
        )
        yield GaugeMetricFamily(
            "itsmd_config_last_reload_success_timestamp_seconds",
            "When the rules, runbooks and credentials were last loaded successfully.",
            value=self.last_success,
        )


RELOADER = web.AppKey("reloader", Reloader)


async def reload_handler(request: web.Request) -> web.Response:
    problems = await request.app[RELOADER].reload(principal_of(request).name)
    if problems:
        response = error_response(
            400,
            "invalid_rules",
            "; ".join(str(p) for p in problems) + " (still running on the last good rules, runbooks and credentials)",
        )
        return response
    return web.json_response({"status": "success"})


ROUTES = [
    Route(
        "POST",
        "/-/reload",
        reload_handler,
        "Reload rules/ (services, correlation, priority); on errors keep the last good rules",
        {
            200: Ok("reloaded", answers.Success),
            400: "invalid rule files (file:line: key: message); the last good rules stay in use",
        },
        role=Role.ADMIN,
        tags=("operations",),
    ),
]
