"""The role loop of a replica on PostgreSQL: follow, take the lease when it is free, lead, step down.

One listen address serves whichever app the role needs. A replica starts as follower (serving the follower
app) and tries to take the lease every renew interval. Once it holds the lease it builds the leader app (the
full daemon, whose store is fenced with the new epoch) while the follower app still answers, then swaps the
two on the listen address. The lease keeper renews on the interval and ends leadership when

- its local deadline passes without a successful renew (checked first on every wake-up, so a process frozen
  by SIGSTOP and continued steps down before anything else of it runs),
- a renew finds the lease taken over (another epoch or holder), or
- the leader's writer reports Fenced (the store saw another epoch first).

Then the leader app is stopped with a short deadline (the store refuses its writes anyway) and the follower
app serves again. On stop (SIGTERM) the leader drains as a single node does, still renewing, and then
releases the lease so that a successor need not wait it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from daemon.app import create_app
from daemon.config import LoadedConfig
from daemon.errors import StorageError, StoreUnavailable
from daemon.reload import RELOADER
from daemon.replica.follower import create_follower_app
from daemon.replica.lease import Lease
from daemon.replica.metrics import ReplicaCollector
from daemon.replica.state import STEP_DOWN_DEADLINE, ReplicaState, identity
from daemon.runbook.config import secret_text

log = logging.getLogger(__name__)

AppFactory = Callable[[ReplicaState], web.Application]


class Supervisor:
    def __init__(
        self,
        lease: Lease,
        state: ReplicaState,
        *,
        leader_app: AppFactory,
        follower_app: AppFactory,
        host: str,
        port: int,
        renew: float,
        shutdown_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._lease = lease
        self.state = state
        self._leader_app = leader_app
        self._follower_app = follower_app
        self._host = host
        self.port = port
        """The listen port; a port 0 becomes the one first bound, so that every role is served there."""
        self._renew = renew
        self._shutdown_timeout = shutdown_timeout
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self._listening = asyncio.Event()
        self._lease_unreadable = False

    @property
    def app(self) -> web.Application | None:
        """The app serving now (leader or follower)."""
        return self._runner.app if self._runner is not None else None

    async def listening(self) -> None:
        """Returns once the first app serves (then `port` is the bound port)."""
        await self._listening.wait()

    def reload(self) -> None:
        """SIGHUP: the leader reloads its rules and runbooks; a follower has nothing to reload."""
        app = self.app
        if app is not None and RELOADER in app:
            app[RELOADER].trigger()
        else:
            log.info("SIGHUP on a follower: nothing to reload (the leader reloads its own files)")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; a leader drains and releases the lease first."""
        runner = await self._setup(self._follower_app(self.state))
        await self._serve(runner)
        try:
            while not stop.is_set():
                epoch = await self._try_acquire()
                if epoch is not None:
                    await self._lead(epoch, stop)
                else:
                    await _wait(stop, self._renew)
        finally:
            await self._close(self._shutdown_timeout)
            await self._lease.release()
            await self._lease.close()

    async def _try_acquire(self) -> int | None:
        try:
            epoch = await self._lease.acquire()
            if epoch is None:
                row = await self._lease.current()
                self.state.saw_leader(row.epoch, row.holder if row.live else None, row.url if row.live else None)
        except StoreUnavailable as exc:
            if not self._lease_unreadable:
                log.warning("cannot read the lease, trying again every %.0fs: %s", self._renew, exc)
            self._lease_unreadable = True
            return None
        if self._lease_unreadable:
            log.info("the lease can be read again")
        self._lease_unreadable = False
        return epoch

    async def _lead(self, epoch: int, stop: asyncio.Event) -> None:
        lost = asyncio.Event()

        def fenced() -> None:
            self._lease.forget()
            lost.set()

        self.state.took_lease(epoch, self._lease.held)
        self.state.on_fenced = fenced
        keeper = asyncio.create_task(self._keep(lost), name="itsmd-lease-keeper")
        try:
            leader = await self._start_leader(lost)
            if leader is not None and (lost.is_set() or stop.is_set()):  # set up, never served
                self.state.stepping_down = lost.is_set()
                await self._cleanup(leader, STEP_DOWN_DEADLINE if lost.is_set() else self._shutdown_timeout)
            elif leader is not None:
                await self._close(STEP_DOWN_DEADLINE)  # the follower: its requests are short
                self.state.lead()
                await self._serve(leader)
                await _first(lost, stop)
                if lost.is_set():
                    log.warning("replica %s lost the lease (epoch %d): stepping down", self.state.name, epoch)
                    self.state.stepping_down = True
                    await self._close(STEP_DOWN_DEADLINE)
                else:
                    # Draining under the lease: what is in flight commits with this epoch, then a successor.
                    await self._close(self._shutdown_timeout)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self._lease.release()
            self.state.follow()
        if self._runner is None and not stop.is_set():
            await self._serve(await self._setup(self._follower_app(self.state)))

    async def _start_leader(self, lost: asyncio.Event) -> web.AppRunner | None:
        """The leader app set up (its state loaded) while the follower app still serves; None if the lease
        was lost on the way."""
        try:
            return await self._setup(self._leader_app(self.state))
        except Exception:
            if not lost.is_set():
                raise  # the leader cannot start (bad runbooks, a foreign database): no replica could
            log.warning("lost the lease while starting as leader", exc_info=True)
            return None

    async def _keep(self, lost: asyncio.Event) -> None:
        """Renew every interval; set `lost` once leadership is over."""
        lease = self._lease
        try:
            while True:
                await asyncio.sleep(max(0.0, min(self._renew, lease.remaining())))
                # First on every wake-up: a process frozen past its deadline must not act on what it was.
                if not lease.held():
                    break
                try:
                    if not await lease.renew():
                        break
                except StoreUnavailable as exc:
                    log.warning("lease renew failed, leading until the local deadline at most: %s", exc)
        except Exception:
            log.exception("the lease keeper failed: stepping down")
            lease.forget()
        finally:
            lost.set()  # also when cancelled: the term is over either way

    async def _setup(self, app: web.Application) -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        return runner

    async def _serve(self, runner: web.AppRunner) -> None:
        site = web.TCPSite(runner, self._host, self.port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
            self._adopt_port()
        self._listening.set()
        log.info("replica %s serves as %s on port %d", self.state.name, self.state.role, self.port)

    def _adopt_port(self) -> None:
        """Listening on port 0 (tests): the name and URL made from the listen address get the bound port,
        before the lease ever names them."""
        state, lease = self.state, self._lease
        if state.url.endswith(":0"):
            state.url = lease.url = f"{state.url.removesuffix(':0')}:{self.port}"
        if state.name.endswith(":0") and lease.holder == state.name:
            state.name = lease.holder = f"{state.name.removesuffix(':0')}:{self.port}"

    async def _close(self, deadline: float) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await self._cleanup(runner, deadline)

    @staticmethod
    async def _cleanup(runner: web.AppRunner, deadline: float) -> None:
        runner._shutdown_timeout = deadline  # how aiohttp's own TCPSite sets it; there is no public way
        await runner.cleanup()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


def for_config(loaded: LoadedConfig, host: str, port: int, ssl_context: ssl.SSLContext | None) -> Supervisor:
    """The supervisor of this process as a replica on storage.backend postgres: the full daemon when it
    leads, the follower app (daemon/replica/follower.py) when it follows."""
    cfg = loaded.config
    if cfg.storage.dsn is None:  # the config check makes this impossible
        raise StorageError("storage.backend postgres without a dsn")
    dsn = secret_text(cfg.storage.dsn)
    name, url = identity(cfg)
    state = ReplicaState(name=name, url=url)
    replica = cfg.replica
    lease = Lease(
        dsn,
        holder=name,
        url=url,
        duration=replica.lease,
        margin=replica.renew / 2,
        timeout=replica.renew,
    )
    state.database_up = lambda: lease.reachable

    def follower(st: ReplicaState) -> web.Application:
        collectors = (ReplicaCollector(st),)
        return create_follower_app(loaded, st, dsn=dsn, lease_ttl=replica.renew, collectors=collectors)

    return Supervisor(
        lease,
        state,
        leader_app=lambda st: create_app(loaded, inbox_dsn=dsn, replica=st),
        follower_app=follower,
        host=host,
        port=port,
        renew=replica.renew,
        shutdown_timeout=cfg.shutdown_timeout,
        ssl_context=ssl_context,
    )
