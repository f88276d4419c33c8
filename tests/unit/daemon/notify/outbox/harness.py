"""An outbox over a real SQLite file, with a manual clock, and receivers built from config dicts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from daemon.clock import ManualClock
from daemon.metrics.counters import CounterStore
from daemon.notify.outbox.config import EventKind, WebhookReceiver
from daemon.notify.outbox.outbox import Event, Outbox
from daemon.storage.database import Database
from daemon.storage.outbox import load_pending
from daemon.storage.writer import GroupCommitWriter

README = Path(__file__).resolve().parents[5] / "README.md"
SECRET = "s3cret-for-tests"  # noqa: S105 - a test secret
SECRET_ENV = "ITSMD_TEST_WEBHOOK_SECRET"  # noqa: S105 - a variable name


def receiver(monkeypatch: Any, **fields: Any) -> WebhookReceiver:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    doc: dict[str, Any] = {"name": "hook", "url": "http://127.0.0.1:9/hook", "secret": {"env": SECRET_ENV}}
    doc.update(fields)
    return WebhookReceiver.model_validate(doc)


def event(kind: EventKind = EventKind.INCIDENT_OPENED, *, at: float, incident: int | None = 1, **kw: Any) -> Event:
    return Event(kind, at, kw.pop("service", "api"), kw.pop("priority", "P2"), incident, kw)


def documented_verify() -> Any:
    """The verify() function README.md documents for receivers, run as written there."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- webhook-verify -->\n```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its webhook verification snippet"
    scope: dict[str, Any] = {}
    exec(found.group(1), scope)  # noqa: S102 - our own README, the point is to run it as documented
    return scope["verify"]


class Harness:
    def __init__(self, path: Path, receivers: list[WebhookReceiver], clock: ManualClock | None = None) -> None:
        self.path = path
        self.clock = clock or ManualClock()
        self.receivers = receivers
        self.db = Database(path / "itsmd.db")
        self.db.open()
        self.writer = GroupCommitWriter(self.db, flush_interval=0.05)
        self.counters = CounterStore(self.writer)
        self.outbox = Outbox(self.writer, self.counters, self.clock, receivers, team_of=lambda s: f"team-{s}")
        self.outbox.restore(*load_pending(self.db.primary))

    def reopen(self) -> Harness:
        """A restart: the same file, a fresh outbox loaded from it."""
        self.close()
        return Harness(self.path, self.receivers, self.clock)

    def rows(self) -> list[tuple[Any, ...]]:
        return self.db.conn.execute(
            "SELECT event_id, receiver, kind, state, attempts FROM outbox ORDER BY seq"
        ).fetchall()

    def close(self) -> None:
        self.writer.shutdown_thread()
        self.db.close()
