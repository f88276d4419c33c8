"""What a replica knows of itself and of the leader, for its apps, its logs and /metrics."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from aiohttp import web

from daemon.config import Config, is_wildcard, parse_listen
from daemon.errors import StorageError

log = logging.getLogger(__name__)

Role = Literal["leader", "follower"]
STEP_DOWN_DEADLINE = 2.0
"""How long a leader that lost the lease waits for its in-flight work: none of its writes can commit."""


def _always() -> bool:
    return True


def _nothing() -> None:
    return None


@dataclass
class ReplicaState:
    """One replica: its own name and URL, its role now, and the leader as last seen.

    `epoch` is the lease's epoch as this replica took it or last saw it (None: a single node, never fenced).
    `held` is the lease's local belief (Lease.held): a leader whose deadline passed shows as not leading even
    before its supervisor has switched it to follower. `on_fenced` is what the leader's writer calls when the
    store refuses its epoch.
    """

    name: str
    url: str
    role: Role = "follower"
    epoch: int | None = None
    leader_name: str | None = None
    leader_url: str | None = None
    since: float = field(default_factory=time.time)
    held: Callable[[], bool] = _always
    on_fenced: Callable[[], None] = _nothing
    database_up: Callable[[], bool] = _always
    """This replica reaches its database (the lease's connection); a single node's store is its open file."""
    stepping_down: bool = False
    """The leader app is being stopped because leadership ended: its shutdown gets the short deadline."""

    @classmethod
    def single_node(cls, config: Config) -> ReplicaState:
        """The one node of a SQLite store: always the leader, no epoch, no fence."""
        name, url = identity(config)
        return cls(name=name, url=url, role="leader", leader_name=name, leader_url=url)

    @property
    def leading(self) -> bool:
        return self.role == "leader" and self.held()

    def took_lease(self, epoch: int, held: Callable[[], bool]) -> None:
        """The lease is this replica's; it serves as leader once its leader app is up (lead())."""
        self.epoch, self.held, self.stepping_down = epoch, held, False

    def lead(self) -> None:
        """The leader app serves: from now on this replica is the leader others are sent to."""
        self.role, self.leader_name, self.leader_url = "leader", self.name, self.url
        self.since = time.time()
        log.info("replica %s leads (epoch %s)", self.name, self.epoch)

    def follow(self) -> None:
        if self.role == "leader":
            log.info("replica %s follows (was leader of epoch %s)", self.name, self.epoch)
            self.since = time.time()
        self.role, self.held, self.on_fenced = "follower", _always, _nothing
        if self.leader_name == self.name:
            self.leader_name = self.leader_url = None

    def shutdown_deadline(self, configured: float) -> float:
        """How long the leader app's shutdown may wait for its work: short once leadership is gone."""
        return min(configured, STEP_DOWN_DEADLINE) if self.stepping_down else configured

    def saw_leader(self, epoch: int, name: str | None, url: str | None) -> None:
        """The lease as a follower last read it (name and url None: no one leads now)."""
        if (name, url) != (self.leader_name, self.leader_url):
            log.info("replica %s: the leader is now %s (%s), epoch %d", self.name, name or "no one", url, epoch)
        self.epoch, self.leader_name, self.leader_url = epoch, name, url


REPLICA = web.AppKey("replica", ReplicaState)
"""The replica's state on both apps (leader and follower)."""


def identity(config: Config) -> tuple[str, str]:
    """This replica's name and the URL others reach it at: replica.name / replica.advertise_url, else the
    host name and the listen address. The config check makes advertise_url required where the listen address
    is no use to others (0.0.0.0, ::)."""
    host, port = parse_listen(config.listen)
    replica = config.replica
    name = replica.name or f"{socket.gethostname()}:{port}"
    if replica.advertise_url is not None:
        return name, str(replica.advertise_url).rstrip("/")
    scheme = "https" if config.tls.enabled else "http"
    shown = f"[{host}]" if ":" in host else host
    if is_wildcard(host):
        shown = socket.gethostname()
    return name, f"{scheme}://{shown}:{port}"


@runtime_checkable
class Fenceable(Protocol):
    """A backend that refuses writes of an epoch that is not the lease's (the PostgreSQL one)."""

    fence_epoch: int | None


def fence(backend: object, state: ReplicaState) -> None:
    """Give the store the leader's epoch, so it refuses this replica's writes once another leads."""
    if state.epoch is None:  # a single node
        return
    if not isinstance(backend, Fenceable):
        raise StorageError("replicas need a store that checks the lease epoch: set storage.backend: postgres")
    backend.fence_epoch = state.epoch
