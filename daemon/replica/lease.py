"""Leadership among replicas on one PostgreSQL: a lease row with an epoch that fences the old leader.

The row `leader_lease (id = 1)` says who leads (holder, url), until when (expires_at), and under which epoch.
Taking the lease over bumps the epoch; the store refuses every write whose backend carries another epoch
(daemon.errors.Fenced), so a replica that only believes it leads cannot change anything.

All times in the row are the database's (clock_timestamp()), so the replicas' clocks never meet. Locally a
replica believes it leads only until `start of its last successful renew (monotonic) + lease - margin`: the
database's expiry is at least that late, since the statement ran after it was sent. A replica that was
frozen (SIGSTOP, a long GC, a stalled VM) sees that deadline passed before it does anything else.

Not an advisory lock: a session lock lives as long as a TCP connection that may be half-open for minutes,
and says nothing to the store's own writer connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from daemon.errors import StoreUnavailable

log = logging.getLogger(__name__)

_ACQUIRE: LiteralString = (
    "UPDATE leader_lease SET epoch = epoch + 1, holder = %s, url = %s, "
    "expires_at = clock_timestamp() + %s * interval '1 second' "
    "WHERE id = 1 AND (expires_at IS NULL OR expires_at < clock_timestamp()) RETURNING epoch"
)
_RENEW: LiteralString = (
    "UPDATE leader_lease SET expires_at = clock_timestamp() + %s * interval '1 second' "
    "WHERE id = 1 AND epoch = %s AND holder = %s RETURNING epoch"
)
# Expired now rather than deleted: the epoch stays, so the successor's is higher still.
_RELEASE: LiteralString = (
    "UPDATE leader_lease SET expires_at = clock_timestamp() WHERE id = 1 AND epoch = %s AND holder = %s"
)
_CURRENT: LiteralString = (
    "SELECT epoch, holder, url, expires_at IS NOT NULL AND expires_at > clock_timestamp() AS live "
    "FROM leader_lease WHERE id = 1"
)


@dataclass(frozen=True)
class LeaseRow:
    """The lease as the database holds it now."""

    epoch: int
    holder: str | None
    url: str | None
    live: bool
    """Not expired: its holder leads (or believes so until its own deadline)."""


class Lease:
    """One replica's side of the lease, on a small autocommit connection of its own (never the store's
    writer: a renew must not queue behind a large commit).

    Database errors raise StoreUnavailable and leave the local belief as it was: the caller keeps leading
    until `deadline` and tries again. A renew that finds another epoch or holder ends leadership at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        holder: str,
        url: str,
        duration: float,
        margin: float,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= margin < duration:
            raise ValueError("the margin must be shorter than the lease")
        self._dsn = dsn
        self.holder = holder
        self.url = url
        self.duration = duration
        self._margin = margin
        self._timeout = timeout
        self._monotonic = monotonic
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._epoch: int | None = None
        self._deadline = 0.0
        self.reachable = True
        """The last statement on the lease's connection succeeded: this replica reaches its database (every
        renew interval, as leader and as follower)."""

    @property
    def epoch(self) -> int | None:
        """The epoch this replica took, while it believes it holds it (see held())."""
        return self._epoch

    @property
    def deadline(self) -> float:
        """Monotonic time after which this replica must not believe it leads without a renew."""
        return self._deadline

    def remaining(self) -> float:
        """Seconds until the local deadline (negative once passed)."""
        return self._deadline - self._monotonic()

    def held(self) -> bool:
        """Leading as far as this process can know: an epoch taken and the local deadline not passed."""
        if self._epoch is not None and self._monotonic() >= self._deadline:
            log.warning("lease epoch %d: local deadline passed without a renew, no longer leading", self._epoch)
            self._epoch = None
        return self._epoch is not None

    async def acquire(self) -> int | None:
        """Take the lease if it is free or expired; the new epoch, or None while another replica holds it."""
        sent = self._monotonic()
        row = await self._one(_ACQUIRE, (self.holder, self.url, self.duration))
        if row is None:
            return None
        self._epoch = int(row["epoch"])
        self._deadline = sent + self.duration - self._margin
        log.info("acquired the lease: epoch %d, held by %s until renewed", self._epoch, self.holder)
        return self._epoch

    async def renew(self) -> bool:
        """Extend the lease; False (and not leading any more) when it is no longer this replica's."""
        epoch = self._epoch
        if epoch is None:
            return False
        sent = self._monotonic()
        row = await self._one(_RENEW, (self.duration, epoch, self.holder))
        if row is None:
            log.warning("lease epoch %d was taken over: no longer leading", epoch)
            self._epoch = None
            return False
        if self._epoch == epoch:
            self._deadline = sent + self.duration - self._margin
        return self._epoch is not None

    async def release(self) -> None:
        """Give the lease up now, so a successor takes it without waiting it out. Errors are logged: the
        lease then expires by itself."""
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return
        try:
            await self._execute(_RELEASE, (epoch, self.holder))
        except StoreUnavailable as exc:
            log.warning("could not release lease epoch %d (it expires by itself): %s", epoch, exc)
        else:
            log.info("released lease epoch %d", epoch)

    def forget(self) -> None:
        """Stop believing in the lease without telling the database (it was lost another way: Fenced)."""
        self._epoch = None

    async def current(self) -> LeaseRow:
        row = await self._one(_CURRENT, ())
        if row is None:
            raise StoreUnavailable("the leader_lease row is missing: is this database migrated for replicas?")
        return LeaseRow(int(row["epoch"]), row["holder"], row["url"], bool(row["live"]))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _one(self, sql: LiteralString, params: tuple[Any, ...]) -> dict[str, Any] | None:
        return await self._run(sql, params, fetch=True)

    async def _execute(self, sql: LiteralString, params: tuple[Any, ...]) -> None:
        await self._run(sql, params, fetch=False)

    async def _run(self, sql: LiteralString, params: tuple[Any, ...], *, fetch: bool) -> dict[str, Any] | None:
        try:
            found = await asyncio.wait_for(self._query(sql, params, fetch), self._timeout)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self.reachable = False
            # A connection that timed out or failed mid-statement is in an unknown state: start afresh.
            await self._drop()
            raise StoreUnavailable(f"lease: {str(exc).strip() or type(exc).__name__}") from exc
        self.reachable = True
        return found

    async def _query(self, sql: LiteralString, params: tuple[Any, ...], fetch: bool) -> dict[str, Any] | None:
        conn = await self._connection()
        cur = await conn.execute(sql, params)
        return await cur.fetchone() if fetch else None

    async def _connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, round(self._timeout)),
                options=f"-c statement_timeout={max(1, int(self._timeout * 1000))}",
                application_name=f"itsmd lease {self.holder}"[:63],
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                log.debug("closing a broken lease connection failed", exc_info=True)
