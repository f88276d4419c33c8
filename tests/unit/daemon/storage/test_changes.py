"""Change records round-trip through a backend: the ledger's rows, the start-up load and the API reads."""

from __future__ import annotations

from daemon.changes.model import Change, ChangeOutcome, ChangeType
from daemon.storage.changes import (
    EVENT,
    LINK,
    UPSERT,
    change_row,
    event_row,
    get_change,
    list_changes,
    load_changes,
)
from daemon.storage.sql import Backend
from tests.unit.daemon.storage.backends_fixture import write


def _change(change_id: int, *, service: str | None = "api", created: float = 100.0) -> Change:
    return Change(
        id=change_id,
        run_id=change_id * 10,
        runbook="restart",
        runbook_version="v1",
        mode="live",
        change_type=ChangeType.NORMAL,
        risk="medium",
        service=service,
        incident_id=None,
        requested_by="alice",
        trigger="api",
        created_at=created,
        run_status="running",
        approval={"decision": "approved", "by": "bob", "reason": "", "at": 101.0},
    )


def test_the_ledger_rows_read_back_with_their_events_and_links(sql_backend: Backend) -> None:
    change = _change(1)
    write(
        sql_backend,
        (UPSERT, change_row(change)),
        (EVENT, event_row(1, 100.0, "created", {"by": "alice"})),
        (LINK, (1, 7, 105.0, "opened within the window")),
        (LINK, (1, 7, 106.0, "the same incident again: kept once")),
    )
    change.run_status, change.outcome, change.ended_at = "succeeded", ChangeOutcome.SUCCESSFUL, 110.0
    change.runbook = "renamed"  # an identity column: written once, never updated
    write(sql_backend, (UPSERT, change_row(change)), (EVENT, event_row(1, 110.0, "ended", {"outcome": "successful"})))
    found = get_change(sql_backend.primary, 1)
    assert found is not None
    assert (found["runbook"], found["outcome"], found["run_status"]) == ("restart", "successful", "succeeded")
    assert found["approval"] == {"decision": "approved", "by": "bob", "reason": "", "at": "1970-01-01T00:01:41.000Z"}
    assert found["suspected_incidents"] == [
        {"incident_id": 7, "at": "1970-01-01T00:01:45.000Z", "reason": "opened within the window"}
    ]
    assert [(e["kind"], e["detail"]) for e in found["events"]] == [
        ("created", {"by": "alice"}),
        ("ended", {"outcome": "successful"}),
    ]
    assert get_change(sql_backend.primary, 2) is None


def test_lists_filter_by_service_outcome_and_state(sql_backend: Backend) -> None:
    ended = _change(2, service="db")
    ended.outcome = ChangeOutcome.FAILED
    write(sql_backend, (UPSERT, change_row(_change(1))), (UPSERT, change_row(ended)), (UPSERT, change_row(_change(3))))
    sql = sql_backend.reader()
    try:

        def ids(
            service: str | None = None, outcome: str | None = None, state: str = "all", limit: int = 10, offset: int = 0
        ) -> list[int]:
            found = list_changes(sql, service=service, outcome=outcome, state=state, limit=limit, offset=offset)
            return [c["id"] for c in found]

        assert ids() == [3, 2, 1]
        assert ids(service="api") == [3, 1]
        assert ids(outcome="failed") == [2]
        assert ids(state="open") == [3, 1]
        assert ids(state="closed") == [2]
        assert ids(limit=1, offset=1) == [2]
    finally:
        sql.close()


def test_load_changes_keeps_open_and_recent_ones_with_their_incidents(sql_backend: Backend) -> None:
    old = _change(1, created=10.0)
    old.outcome, old.ended_at = ChangeOutcome.SUCCESSFUL, 20.0
    recent = _change(2, created=10.0)
    recent.outcome, recent.ended_at = ChangeOutcome.SUCCESSFUL, 95.0
    still_open = _change(3, created=5.0)
    write(
        sql_backend,
        *((UPSERT, change_row(c)) for c in (old, recent, still_open)),
        (LINK, (3, 9, 7.0, "r")),
        (LINK, (3, 8, 6.0, "r")),
    )
    snapshot = load_changes(sql_backend.primary, now=100.0, window=10.0)
    assert [c.id for c in snapshot.changes] == [2, 3]
    assert snapshot.changes[1].suspected_incidents == [8, 9]  # in the order they were linked
    assert snapshot.next_id == 4
    assert load_changes(sql_backend.primary, now=0.0, window=1.0).next_id == 4
