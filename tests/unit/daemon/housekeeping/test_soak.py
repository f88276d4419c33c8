"""A year of operation on the injectable clock: retention levels off what is kept, past figures stay put.

The real app over a real SQLite file; alerts posted over HTTP (/api/v2/alerts) at ManualClock times, every
day: per service a few incidents that flap (resolve and fire again inside the reopen window: a reopen), of
alert names that recur every day (problems), and weekly a change and a drill written as their records. The
daemon's periodic work (sweep, incident timers, availability compaction, housekeeping) is called at the
simulated times instead of waiting for the scheduler.

Asserted (none of it timing): rows kept and alerts in memory level off once retention applies; the service
report of month 1 computed early in month 2 equals the one computed in month 13, after its rows are gone;
a restart in month 12 reads no more rows than one in month 2 (bounded by what is active, not by history) and
gives the same downtime counters as before it. Printed: store size, RSS and start-up time per month (RSS
is this test process's: every month's app stays referenced after its restart, so it climbs with the restarts,
not with a daemon's history; the alerts and incidents each app holds are what is asserted).

ITSMD_SOAK_SCALE=full runs the issue's scale (50k alerts and 2k incidents a day over 20 services), =tenth a
tenth of its incidents (5k alerts and 200 incidents a day over 20 services); the default is a reduced scale
for CI.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.api import keys
from daemon.app import AVAILABILITY, HOUSEKEEPING
from daemon.audit.chain import anchor_path, load_key
from daemon.audit.verify import check
from daemon.cli import main
from daemon.clock import ManualClock
from daemon.report.produce import produce
from daemon.storage.database import Batch, Statement
from daemon.storage.reading import reading
from daemon.storage.sql import Backend
from tests.postgres import backend_for_test, storage_section
from tests.unit.daemon.configfiles import write
from tests.unit.daemon.ingest.conftest import Daemon, epoch, running, series

_SCALES = {"full": (20, 100, 25), "tenth": (20, 10, 25)}
"""ITSMD_SOAK_SCALE: `full` is the issue's scale, `tenth` a tenth of its incidents (5k alerts a day); unset, CI's."""
SERVICES, INCIDENTS_PER_SERVICE, ALERTS_PER_INCIDENT = _SCALES.get(os.environ.get("ITSMD_SOAK_SCALE", ""), (3, 2, 2))
"""Services; a day's incidents per service; alerts of each incident (fresh fingerprints every day)."""
DAYS = 396
"""Thirteen months and the first days of the fourteenth."""
START = epoch("2027-01-01T00:00:00Z")
DAY = 86400.0
RETENTION = """\
retention:
  alerts: 7d
  incidents: 45d
  problems: 45d
  changes: 45d
  runs: 45d
  drills: 45d
  outbox: 7d
  batch_size: 200
  pause: 1ms
  max_batches: 1000
"""
_CHANGE = Statement(
    "INSERT INTO changes (id, run_id, runbook, runbook_version, mode, change_type, risk, service, incident_id, "
    "requested_by, trigger, run_status, outcome, reason, created_at, started_at, ended_at) "
    "VALUES (?, ?, 'deploy', '1', 'live', 'standard', 'low', ?, NULL, 'soak', 'manual', 'succeeded', ?, '', ?, ?, ?)"
)
_DRILL = Statement(
    "INSERT INTO drill_runs (id, drill, service, trigger, requested_by, outcome, reason, run_id, started_at, "
    "ended_at, recovery_seconds, rto_seconds, rpo_seconds, data_loss_seconds) "
    "VALUES (?, 'failover', ?, 'schedule', 'scheduler', 'passed', '', NULL, ?, ?, 60.0, 300.0, NULL, NULL)"
)


def _services() -> list[str]:
    return [f"svc{i:02d}" for i in range(SERVICES)]


def _config(tmp_path: Path) -> Path:
    listed = "".join(f"  - name: {name}\n" for name in _services())
    write(tmp_path / "etc" / "rules" / "services.yaml", f"services:\n{listed}")
    write(tmp_path / "etc" / "rules" / "correlation.yaml", "{}\n")
    return write(tmp_path / "etc" / "itsmd.yaml", f"rules_dir: rules\n{RETENTION}")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _alerts(day: int, *, firing: bool, starts: float, now: float) -> list[dict[str, Any]]:
    out = []
    for service in _services():
        for k in range(INCIDENTS_PER_SERVICE):
            for j in range(ALERTS_PER_INCIDENT):
                labels = {
                    "alertname": f"Check{k}",
                    "service": service,
                    "severity": "critical" if k % 2 == 0 else "warning",
                    "instance": f"d{day}-{j}",
                }
                ends = now + 3600 if firing else now
                out.append({"labels": labels, "startsAt": _iso(starts), "endsAt": _iso(ends)})
    return out


class Soak:
    def __init__(self, tmp_path: Path) -> None:
        self.config = _config(tmp_path)
        self.data = tmp_path / "data"
        self.clock = ManualClock(start=START)
        self.pending: list[Batch] = []
        self.record_id = 1_000_000

    @asynccontextmanager
    async def up(self) -> AsyncIterator[Daemon]:
        async with running(self.config, self.data, self.clock) as d:
            d.client.app[keys.WRITER].add_collector(self._collect)
            yield d

    def _collect(self, batch: Batch, lazy: bool) -> None:
        for pending in self.pending:
            batch.absorb(pending)
        self.pending.clear()

    async def post(self, d: Daemon, body: list[dict[str, Any]]) -> None:
        for i in range(0, len(body), 5000):
            status, answer = await d.v2(body[i : i + 5000])
            assert status == 200, answer

    async def at(self, d: Daemon, t: float) -> None:
        """Move the clock to `t` and do the periodic work due by then."""
        self.clock.advance(t - self.clock.now())
        app = d.client.app
        await app[keys.PIPELINE].sweep()
        app[keys.PIPELINE].correlator.run_due(t)

    async def day(self, d: Daemon, day: int) -> None:
        base = START + day * DAY
        opened = base + 2 * 3600
        await self.at(d, opened)
        await self.post(d, _alerts(day, firing=True, starts=opened, now=opened))
        await self.at(d, base + 2 * 3600 + 1200)
        await self.post(d, _alerts(day, firing=False, starts=opened, now=self.clock.now()))
        flap = base + 2 * 3600 + 1500  # inside the 30m reopen window: the incidents reopen
        await self.at(d, flap)
        await self.post(d, _alerts(day, firing=True, starts=flap, now=flap))
        await self.at(d, base + 2 * 3600 + 2400)
        await self.post(d, _alerts(day, firing=False, starts=flap, now=self.clock.now()))
        if day % 7 == 3:
            self._records(base + 12 * 3600)
            app = d.client.app
            await app[keys.WRITER].durable(app[keys.WRITER].changed(), 10)
        await self.at(d, base + 4 * 3600)
        app = d.client.app
        app[AVAILABILITY].compact(self.clock.now())
        await app[HOUSEKEEPING].run()

    def _records(self, at: float) -> None:
        batch = Batch()
        for service in _services():
            self.record_id += 1
            batch.append(_CHANGE, (self.record_id, self.record_id, service, "successful", at, at, at + 300))
            batch.append(_DRILL, (self.record_id, service, at, at + 60))
        self.pending.append(batch)

    @contextmanager
    def store(self) -> Iterator[Backend]:
        """The store the app runs on (the SQLite file, or the database standing in for it), opened for reads."""
        backend = backend_for_test(self.data)
        backend.open()
        try:
            yield backend
        finally:
            backend.close()

    def cli(self) -> list[str]:
        """Where `itsmd audit` finds the store and the key: the data folder, or a config naming the database."""
        section = storage_section(self.data)
        if not section:
            return ["--data-dir", str(self.data)]
        storage = "".join(f"  {k}: {v}\n" for k, v in section.items())
        # The keys the daemon of this test used (its data_dir's): a PostgreSQL config must name them.
        keys = f"audit:\n  key_file: {self.data}/audit.key\nrunbooks:\n  digest_key_file: {self.data}/digest.key\n"
        text = f"data_dir: {self.data}\nstorage:\n{storage}{keys}"
        return ["--config", str(write(self.data.parent / "cli.yaml", text))]

    def kept(self) -> dict[str, int]:
        with self.store() as backend, reading(backend) as sql:
            return {
                table: int(sql.scalar(f"SELECT count(*) FROM {table}"))  # noqa: S608 (names below)
                for table in ("alerts", "incidents", "timeline", "problems", "changes", "drill_runs")
            }


def _report(soak: Soak, d: Daemon, month: str) -> dict[str, Any]:
    catalogue = d.client.app[keys.PIPELINE].correlator.ruleset.catalogue
    with soak.store() as backend:
        text = produce(backend, catalogue, month, now=soak.clock.now(), fmt="json")
    doc: dict[str, Any] = json.loads(text)
    doc.pop("generated_at", None)
    return doc


def _downtime(metrics: dict[Any, float]) -> dict[str, float]:
    return {s: metrics[series("itsmd_service_downtime_seconds_total", service=s, planned="false")] for s in _services()}


def _rss_mib() -> float:
    """Resident set size now (Linux), not the peak: whether memory levels off."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def test_a_year_levels_off_and_past_months_stay_put(tmp_path: Path) -> None:
    soak = Soak(tmp_path)
    kept: dict[int, dict[str, int]] = {}
    in_memory: dict[int, int] = {}
    start_rows: dict[int, int] = {}
    month1_early: dict[str, Any] | None = None
    downtime: dict[str, float] = {}
    sizes: dict[int, int] = {}
    day = 0
    print(
        f"\nsoak: {SERVICES} services, {INCIDENTS_PER_SERVICE * SERVICES} incidents and "
        f"{INCIDENTS_PER_SERVICE * SERVICES * ALERTS_PER_INCIDENT} alerts a day, {DAYS} days"
    )
    print(f"{'month':>5} {'alerts':>7} {'incidents':>9} {'timeline':>8} {'db KiB':>8} {'RSS MiB':>8} {'start s':>8}")
    archives: list[Path] = []
    # Each simulated month in a run of its own: every month starts with a restart.
    for month in range(1, 15):
        if month > 2:
            # The audit trail is never pruned; archived monthly, beyond the records' retention.
            archives.append(tmp_path / f"audit-{month}.jsonl")
            before = _iso(soak.clock.now() - 45 * DAY)
            args = [*soak.cli(), "--before", before, "--out", archives[-1]]
            assert main(["audit", "archive", *map(str, args)]) == 0
        began = time.perf_counter()
        async with soak.up() as d:
            started = time.perf_counter() - began
            app = d.client.app
            start_rows[month] = app[AVAILABILITY].rows_read
            if month > 1:
                # The same counters as before the restart, from rollups plus the active tail.
                assert _downtime(await d.metrics()) == downtime
            last = START + _month_start_day(month + 1) * DAY
            while day < DAYS and START + day * DAY < last:
                await soak.day(d, day)
                day += 1
                if month == 2 and day == _month_start_day(2) + 2:
                    month1_early = _report(soak, d, "2027-01")
            in_memory[month] = len(app[keys.PIPELINE].alerts) + len(app[keys.PIPELINE].correlator.incidents())
            kept[month] = soak.kept()
            size = sizes[month] = app[HOUSEKEEPING].database_bytes or 0
            k = kept[month]
            print(
                f"{month:>5} {k['alerts']:>7} {k['incidents']:>9} {k['timeline']:>8} {size // 1024:>8} "
                f"{_rss_mib():>8.0f} {started:>8.3f}"
            )
            if month == 13:
                assert month1_early is not None
                # Its incidents, timelines and alerts are long pruned; the report is what it was.
                assert soak.kept()["incidents"] < kept[2]["incidents"] * 2
                assert _report(soak, d, "2027-01") == month1_early
            downtime = _downtime(await d.metrics())
            if day >= DAYS:
                break
    deleted = app[HOUSEKEEPING].deleted
    print(f"deleted: {deleted}")
    for record in ("alerts", "incidents", "changes", "drills"):
        assert deleted[record] > 0
    # Level: months 4..13 keep about what month 3 keeps (45 days of records, 7 days of alerts).
    for month in range(4, 14):
        for table in ("alerts", "incidents", "timeline", "changes", "drill_runs"):
            assert kept[month][table] <= kept[3][table] * 1.25 + 10, (month, table, kept)
        assert in_memory[month] <= in_memory[3] * 1.25 + 10
        assert sizes[month] <= sizes[3] * 1.25, sizes
    # Start-up reads what is active and the rollups, not the months kept.
    print(f"rows read at start-up: {start_rows}")
    assert start_rows[12] <= start_rows[2] * 1.25 + 10, start_rows
    # The archived trail and the store together still verify.
    # (The check `itsmd audit verify --archive ...` runs, on a backend opened here: the command does not open
    # a PostgreSQL backend before reading yet.)
    key_file = soak.data / "audit.key"
    with soak.store() as backend, reading(backend) as sql:
        report = check(sql, load_key(key_file), anchor_path(key_file), archives=archives)
    print(f"audit: {report.events} events, head seq {report.head.seq}, findings {[str(f) for f in report.findings]}")
    assert report.ok


def _month_start_day(month: int) -> int:
    """Day number (from START) of the first day of simulated month `month` (1 = January 2027)."""
    year, mon = 2027 + (month - 1) // 12, (month - 1) % 12 + 1
    return int((datetime(year, mon, 1, tzinfo=UTC).timestamp() - START) // DAY)
