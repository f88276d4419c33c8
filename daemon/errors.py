"""The one exception tree of itsmd.

    ItsmdError
    ├── ConfigError          a config, rule or runbook file is wrong (names file, line, key)
    ├── RequestError         a request is refused (bad body, bad query, rate limit); HTTP status and reason code
    ├── Overloaded           too many changes wait for the store; the sender should retry later (503)
    └── StorageError         the store cannot be used
        ├── StoreUnavailable     writes fail for now (disk full, read-only); retry later
        └── IncompatibleStore    the file is not an itsmd database, or is newer than this build

Handlers turn RequestError into a 4xx JSON answer; StoreUnavailable becomes 503 with Retry-After.
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
    """A request that itsmd refuses as the client's mistake. Nothing of it is stored."""

    def __init__(self, reason: str, message: str, status: int = 400, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.message = message
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"{reason}: {message}")


class Overloaded(ItsmdError):
    """More changes wait for a commit than the configured bound; nothing of the request was applied."""


class StorageError(ItsmdError):
    """The store cannot do what was asked."""


class StoreUnavailable(StorageError):
    """Writes are failing for now; callers answer 503 and the sender retries."""


class IncompatibleStore(StorageError):
    """The database file is not one this build can use; itsmd refuses to start."""
