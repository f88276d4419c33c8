"""The one exception tree of itsmd.

    ItsmdError
    ├── ConfigError          a config, rule or runbook file is wrong (names file, line, key)
    ├── RequestError         a request is refused; its class says why, its reason code which rule refused it
    │   ├── InvalidInput         a bad body, query, label or param
    │   ├── Forbidden            the caller may not do this to this record
    │   ├── NotFound             no such record, runbook, drill or action
    │   ├── Conflict             not allowed in the record's state; the message names what is
    │   │                        (runbook.errors.InvalidRunTransition, drills.runner.DrillBusy)
    │   ├── TooLarge             a body or count over its limit
    │   ├── Unprocessable        well-formed but refers to something unusable (runbook.errors.RunRefused;
    │   │                        its UnknownRunbook is also a NotFound)
    │   ├── RateLimited          over the per-client rate; retry_after says when to retry
    │   ├── UpstreamFailed       a server itsmd reads through answered wrongly
    │   └── Unavailable          cannot be done now (shutting down, upstream unreachable); retry later
    ├── Overloaded           too many changes wait for the store; the sender should retry later (503)
    └── StorageError         the store cannot be used
        ├── StoreUnavailable     writes fail for now (disk full, read-only); retry later
        ├── IncompatibleStore    the file is not an itsmd database, or is newer than this build
        └── Fenced               this replica's leadership epoch is gone: its writes are refused

Domain code raises these classes and never picks an HTTP status: daemon/api/errors.py maps each class to its
status in one table and answers JSON {status, reason, error}; StoreUnavailable and Overloaded become 503 with
Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass


class ItsmdError(Exception):
    """Base of every error itsmd raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ItsmdError):
    """One or more problems in a configuration or rule file."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RequestError(ItsmdError):
    """A request that itsmd refuses. Nothing of it is stored. `reason` is the stable code clients match on;
    a bare RequestError is answered like InvalidInput."""

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{reason}: {message}")


class InvalidInput(RequestError):
    """The body, query, a label or a param is wrong; the message says which and why."""


class Forbidden(RequestError):
    """The caller is who it says, but may not do this (not in approval.who, separation of duties)."""


class NotFound(RequestError):
    """No such record, runbook, drill or action."""


class Conflict(RequestError):
    """Not allowed from the record's current state (an invalid transition, a busy service)."""


class TooLarge(RequestError):
    """A body, or a count in it, over its configured limit."""


class Unprocessable(RequestError):
    """Well-formed, but it names something that cannot be used (an unknown service, a missing integration)."""


class RateLimited(RequestError):
    """Over the per-client rate; retry_after says when the next request would be taken."""


class UpstreamFailed(RequestError):
    """A server itsmd reads through for this request (the configured Alertmanager) answered with an error."""


class Unavailable(RequestError):
    """Cannot be done now (the daemon shuts down, an upstream cannot be reached); the same request may work later."""


class Overloaded(ItsmdError):
    """More changes wait for a commit than the configured bound; nothing of the request was applied."""


class StorageError(ItsmdError):
    """The store cannot do what was asked."""


class StoreUnavailable(StorageError):
    """Writes are failing for now; callers answer 503 and the sender retries."""


class IncompatibleStore(StorageError):
    """The database file is not one this build can use; itsmd refuses to start."""


class Fenced(StorageError):
    """A write carried a leadership epoch that is no longer the lease's: another replica leads now. The
    writer does not retry it; the replica steps down."""
