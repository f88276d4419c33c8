"""Start-up: is itsmd ready in 5 s with 100k active alerts and a year of history, and flat in the years kept?

    .venv/bin/python -m bench.startup [--years 2] [--per-day 300] [--links 10] [--starts 3] [--alerts keep|retention]

A real itsmd (default config, its own data folder) takes 100k distinct firing alerts through
``POST /api/v2/alerts`` (bench.scale's fill: 50 alert names x 200 services; with no catalogue the default
correlation makes them 50 open incidents of 2,000 alerts) and is stopped with SIGTERM. Then, per level of
history (0, 1, 2, ... years), it is started ``--starts`` times on that folder: seconds from spawn to
``/-/ready`` answering 200, and its VmRSS once ready. Between levels, with the daemon stopped, one more year
(older than the ones before) of closed incidents, their alert links, timelines and resolved alerts is written
into the SQLite file through the record modules' statements and row functions (``Database.write(Batch)``),
followed by what housekeeping would have left: the daily availability rollup and its mark, and the frozen
monthly reports, made by the housekeeping code itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from bench.scale import _fill, _itsmd, _rss_mib
from bench.server import ServerProcess, free_port, peak_rss_bytes, scrape_counter
from bench.targets import REPO_ROOT
from daemon.availability.tracker import AvailabilityTracker
from daemon.clock import SystemClock
from daemon.config import LoadedConfig, load_config
from daemon.housekeeping import frozen
from daemon.housekeeping.rollup import DAY, day_floor, day_rows, next_mark
from daemon.model import Alert, AlertStatus, Incident, IncidentStatus, SlaClock, TimelineEntry
from daemon.report import period as periods
from daemon.report.build import build_report
from daemon.storage import rollups
from daemon.storage.alerts import alert_row, load_active_alerts, load_alerts
from daemon.storage.availability import load_histories
from daemon.storage.database import Batch, Database
from daemon.storage.drills import drill_results
from daemon.storage.incidents import INCIDENT, LINK, TIMELINE, incident_row, load_incidents, timeline_row
from daemon.storage.sql import Sql
from integrations.alertmanager.fingerprint import fingerprint

ACTIVE = 100_000
TARGET_S = 5.0  # issue 15: ready in 5 s or less with a year of history and 100k active alerts
DAYS_PER_BATCH = 5  # one transaction per 5 days of history: bounded memory, few commits
YEAR_DAYS = 365


def _log(msg: str) -> None:
    print(f"[startup {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Level:
    """The store at one level of history, and the starts measured on it."""

    years: int
    incidents: int
    timeline: int
    links: int
    alerts: int
    db_mib: float
    ready_s: list[float]
    rss_mib: list[float]
    peak_mib: list[float]
    firing: float | None
    loads_ms: dict[str, float]
    """In-process timings of the start-up reads against this store (the bench's own process, no server)."""
    availability_rows: int
    """What AvailabilityTracker.load read (marks, incidents, rollup sums): it counts them, nothing exports it."""

    @property
    def ready(self) -> float:
        return statistics.median(self.ready_s)


@dataclass
class Template:
    """An open incident of the fill, its opening alert and its `opened` detail: history rows copy them, so
    keys, titles, rules, priorities, SLA targets and labels are what the daemon made."""

    incident: Incident
    alert: Alert
    opened: dict[str, object]


class Store:
    """The data folder: starts of the daemon on it, and history written into it while it is stopped."""

    def __init__(self, tmp: Path, active: int) -> None:
        self.active = active
        first = _itsmd(tmp, "itsmd")  # writes itsmd.yaml ({}: all defaults) and makes data/
        self.workdir = tmp / "itsmd"
        self.argv = first.argv
        self.loaded: LoadedConfig = load_config(self.workdir / "itsmd.yaml", data_dir=self.workdir / "data")
        self.db_path = self.loaded.db_path

    def server(self) -> ServerProcess:
        port = free_port()
        argv = list(self.argv)
        argv[argv.index("--listen") + 1] = f"127.0.0.1:{port}"
        return ServerProcess("itsmd", argv, port=port, log_path=self.workdir / "server.log", cwd=REPO_ROOT)

    def fill(self) -> float:
        starts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        with self.server() as server:
            server.wait_ready("/-/ready", 60)
            t0 = time.monotonic()
            asyncio.run(_fill(server.url("/api/v2/alerts"), "v2", start=0, stop=self.active, starts=starts))
            took = time.monotonic() - t0
            if server.stop(grace=60) != 0:
                raise SystemExit(f"itsmd did not stop cleanly:\n{server.log_tail()}")
        return took

    def start(self) -> tuple[float, float, float, float | None]:
        """One start: ready seconds, VmRSS at ready, peak RSS before the stop, itsmd_alerts_firing."""
        with self.server() as server:
            ready = server.wait_ready("/-/ready", 120)
            rss = _rss_mib(server.pid)
            firing = scrape_counter(server.url("/metrics"), "itsmd_alerts_firing")
            time.sleep(2.0)  # the filter of disk-only alerts scans the store once the daemon is up
            peak = peak_rss_bytes(server.pid) / 2**20
            if server.stop(grace=60) != 0:
                raise SystemExit(f"itsmd did not stop cleanly:\n{server.log_tail()}")
        return ready, rss, peak, firing


def _templates(db: Database) -> list[Template]:
    chosen, _ = load_incidents(db.primary)  # the fill's incidents: the history repeats them in turn
    openers = {i.id: next(iter(sorted(i.fingerprints))) for i in chosen}
    alerts = load_alerts(db.primary, list(openers.values()))
    out = []
    for i in sorted(chosen, key=lambda i: i.id):
        detail = db.primary.scalar("SELECT detail FROM timeline WHERE incident_id = ? AND kind = 'opened'", (i.id,))
        out.append(Template(i, alerts[openers[i.id]], json.loads(str(detail))))
    return out


def _one_incident(
    batch: Batch, t: Template, incident_id: int, opened_at: float, *, rnd: random.Random, links: int,
    close_after: float, keep_alerts_after: float,
) -> None:  # fmt: skip
    """A closed incident as the correlator leaves it: opened by its first alert, the others attached within
    minutes, all resolved, resolved by the alerts when the last one ended, closed once the quiet period is over."""
    entries: list[TimelineEntry] = []
    ends: list[float] = []
    for k in range(links):
        labels = {**t.alert.labels, "instance": f"hist-{incident_id}-{k}:9100"}
        service, name = labels.get("service", ""), labels.get("alertname", "")
        annotations = {**t.alert.annotations, "summary": f"{name} on {service} ({labels['instance']})"}
        fp = fingerprint(labels)
        attached = opened_at + (0.0 if k == 0 else rnd.uniform(0, 600))
        starts = attached - 30.0
        ended = attached + rnd.uniform(300, 7200)
        ends.append(ended)
        if k == 0:
            entries.append(TimelineEntry(incident_id, opened_at, "opened", {**t.opened, "alert": fp}))
        entries.append(TimelineEntry(incident_id, attached, "alert_firing", {"alert": fp, "starts_at": starts}))
        entries.append(TimelineEntry(incident_id, ended + 15, "alert_resolved", {"alert": fp, "ended_at": ended}))
        batch.upsert(LINK, (incident_id, fp, starts), (incident_id, fp, starts, attached, ended))
        if ended > keep_alerts_after:
            alert = dataclasses.replace(
                t.alert, fingerprint=fp, labels=labels, annotations=annotations, status=AlertStatus.RESOLVED,
                starts_at=starts, ends_at=ended, first_seen=attached, last_seen=ended + 15,
                times_seen=int((ended - starts) / 60) + 1, state_changes=1, expires_at=None, incident_id=incident_id,
            )  # fmt: skip
            batch.alerts[fp] = alert_row(alert)
    resolved = max(ends)
    entries.append(TimelineEntry(incident_id, resolved + 15, "resolved", {"by": "alerts", "ended_at": resolved}))
    closed = resolved + 15 + close_after
    entries.append(TimelineEntry(incident_id, closed, "closed", {"by": "itsmd", "reason": "quiet period over"}))
    sla = t.incident.sla
    incident = dataclasses.replace(
        t.incident, id=incident_id, status=IncidentStatus.CLOSED, opened_at=opened_at, resolved_at=resolved,
        resolved_by="alerts", closed_at=closed, last_attached_at=max(e.at for e in entries if e.kind == "alert_firing"),
        sla=SlaClock(
            respond_target=sla.respond_target, resolve_target=sla.resolve_target, counted=resolved - opened_at,
            since=None,
            respond_by=opened_at + sla.respond_target if sla.respond_target is not None else None,
            resolve_by=opened_at + sla.resolve_target if sla.resolve_target is not None else None,
        ),
        flapping=set(), fingerprints=set(), firing={}, acknowledged_at=None, assignee=None,
    )  # fmt: skip
    batch.upsert(INCIDENT, incident_id, incident_row(incident))
    for entry in sorted(entries, key=lambda e: e.at):
        batch.append(TIMELINE, timeline_row(entry))


def add_year(store: Store, year: int, history_end: float, args: argparse.Namespace) -> int:
    """Write history year `year` (1: the year before `history_end`, 2: the one before that...); returns the
    incidents written. Ids continue after the store's highest: older incidents get higher ids than the fill's
    (nothing at start-up orders incidents by id against time)."""
    db = Database(store.db_path)
    db.open()
    try:
        templates = _templates(db)
        next_id = int(db.primary.scalar("SELECT coalesce(max(id), 0) FROM incidents") or 0) + 1
        close_after = float(store.loaded.correlation.close_after)
        retention = store.loaded.config.retention.alerts
        keep_after = history_end - retention if args.alerts == "retention" else float("-inf")
        rnd = random.Random(args.seed * 1000 + year)
        # Every incident must be closed before history_end: the quiet period and the longest episode fit.
        last_day = day_floor(history_end - close_after - 3 * 3600.0 - DAY) - (year - 1) * YEAR_DAYS * DAY
        written = 0
        batch = Batch()
        for d in range(YEAR_DAYS):
            day = last_day - d * DAY
            for _ in range(args.per_day):
                t = templates[written % len(templates)]
                _one_incident(batch, t, next_id, day + rnd.uniform(0, DAY - 3 * 3600.0), rnd=rnd, links=args.links,
                              close_after=close_after, keep_alerts_after=keep_after)  # fmt: skip
                next_id += 1
                written += 1
            if d % DAYS_PER_BATCH == DAYS_PER_BATCH - 1:
                db.write(batch)
                batch = Batch()
        if batch:
            db.write(batch)
        _roll_up(db, store.loaded, history_end)
    finally:
        db.close()
    return written


def _roll_up(db: Database, loaded: LoadedConfig, now: float) -> None:
    """What housekeeping's first run on this store would write, without its per-run month limit: the daily
    availability rollup from the first incident to the mark, and every month due frozen (daemon.housekeeping.job's
    _roll_up and _freeze, on the same functions). Recomputed from all rows after each year: a day's rows are
    full states, so days already there are rewritten with the same figures."""
    sql = db.primary
    catalogue = loaded.rules.catalogue
    keep = max(loaded.config.availability.windows, default=DAY)
    histories = load_histories(sql)
    first = rollups.first_incident_at(sql)
    if first is None:
        return
    until = next_mark(now, keep, histories)
    batch = Batch()
    for row in day_rows(histories, catalogue, day_floor(first), until):
        batch.upsert(rollups.SET_DAY, row[:2], row)
    batch.upsert(rollups.SET_MARK, rollups.AVAILABILITY, (rollups.AVAILABILITY, until))
    tz = loaded.config.reports.time_zone
    done = rollups.frozen_months(sql, tz)
    name = datetime.fromtimestamp(first, UTC).strftime("%Y-%m") if tz == "UTC" else None
    if name is None:
        raise SystemExit(f"reports.time_zone {tz}: this bench freezes UTC months only")
    while True:
        month = periods.month(name, tz)
        if month.end + frozen.FREEZE_AFTER > now:
            break
        if name not in done:
            report = build_report(sql, catalogue, month, now=now, time_zone=tz,
                                  drills=drill_results(sql, month.start, month.end))  # fmt: skip
            batch.upsert(rollups.FREEZE_MONTH, (month.name, tz), (month.name, tz, now, frozen.to_json(report)))
        name = datetime.fromtimestamp(month.end, UTC).strftime("%Y-%m")
    db.write(batch)


def _count(sql: Sql, table: str) -> int:
    return int(sql.scalar(f"SELECT count(*) FROM {table}") or 0)  # noqa: S608 (table names of this module)


def _loads(store: Store) -> tuple[dict[str, float], int]:
    """The start-up reads that could grow with history, timed in this process on a read-only connection (the
    OS cache is warm from the starts just measured)."""
    loaded = store.loaded
    sql = Database(store.db_path).reader()
    now = time.time()
    out: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        load_active_alerts(sql, now=now, retention=loaded.config.alerts.resolved_retention)
        out["active alerts"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        load_incidents(sql)
        out["open incidents"] = (time.perf_counter() - t0) * 1000
        tracker = AvailabilityTracker(lambda: loaded.rules.catalogue, SystemClock(), loaded.config.availability.windows)
        t0 = time.perf_counter()
        tracker.load(sql, now)
        out["availability"] = (time.perf_counter() - t0) * 1000
    finally:
        sql.close()
    return out, tracker.rows_read


def measure(store: Store, years: int, args: argparse.Namespace) -> Level:
    ready, rss, peak = [], [], []
    firing: float | None = None
    for n in range(args.starts):
        r, m, p, firing = store.start()
        ready.append(r)
        rss.append(m)
        peak.append(p)
        _log(f"{years} years, start {n + 1}: ready in {r:.2f} s, RSS {m:.0f} MiB, firing {firing}")
    sql = Database(store.db_path).reader()
    try:
        incidents, timeline, links, alerts = (
            _count(sql, t) for t in ("incidents", "timeline", "incident_alerts", "alerts")
        )
    finally:
        sql.close()
    loads, rows = _loads(store)
    size = sum(p.stat().st_size for p in store.db_path.parent.glob("itsmd.db*")) / 2**20
    return Level(years, incidents, timeline, links, alerts, size, ready, rss, peak, firing, loads, rows)


def table(levels: list[Level]) -> str:
    lines = [
        "| years of history | incidents | timeline | incident_alerts | alerts | db MiB | ready s (median) "
        "| ready s (each) | RSS MiB | peak RSS MiB | firing | active alerts ms | open incidents ms "
        "| availability ms | availability rows read |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in levels:
        lines.append(
            f"| {v.years} | {v.incidents:,} | {v.timeline:,} | {v.links:,} | {v.alerts:,} | {v.db_mib:,.0f} "
            f"| {v.ready:.2f} | {' / '.join(f'{s:.2f}' for s in v.ready_s)} | {statistics.median(v.rss_mib):.0f} "
            f"| {max(v.peak_mib):.0f} | {v.firing if v.firing is None else f'{v.firing:.0f}'} "
            f"| {v.loads_ms['active alerts']:.0f} | {v.loads_ms['open incidents']:.0f} "
            f"| {v.loads_ms['availability']:.0f} | {v.availability_rows:,} |"
        )
    return "\n".join(lines)


def verdicts(levels: list[Level], active: int) -> list[str]:
    by = {v.years: v for v in levels}
    out = []
    if 1 in by:
        ok = "met" if by[1].ready <= TARGET_S else "NOT met"
        out.append(f"ready at 1 year of history = {by[1].ready:.2f} s (target <= {TARGET_S:.1f} s): {ok}")
        for years in sorted(y for y in by if y > 1):
            out.append(f"ready at {years} years / at 1 year = {by[years].ready / by[1].ready:.2f} "
                       "(~1: does not grow with the years kept)")  # fmt: skip
    if 0 in by and 1 in by:
        out.append(f"ready at 1 year / at 0 years = {by[1].ready / by[0].ready:.2f}")
    wrong = [v.years for v in levels if v.firing != active]
    if wrong:
        out.append(f"WARNING: itsmd_alerts_firing is not {active:,} at years {wrong}")
    return out


def _raise_interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n\n")[0])
    p.add_argument("--years", type=int, default=2, help="years of history added, one at a time (default 2)")
    p.add_argument("--per-day", type=int, default=300, help="closed incidents a day (default 300)")
    p.add_argument("--links", type=int, default=10, help="alerts per closed incident (default 10)")
    p.add_argument("--starts", type=int, default=3, help="starts per level; the median is reported (default 3)")
    p.add_argument(
        "--alerts",
        choices=("keep", "retention"),
        default="keep",
        help="keep: every history incident's resolved alerts stay in the alerts table (as with a long "
        "retention.alerts); retention: only those that ended within the default retention.alerts (30 days) "
        "before the history ends, as housekeeping would leave them (default keep)",
    )
    p.add_argument("--active", type=int, default=ACTIVE, help=f"firing alerts (default {ACTIVE:,})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", type=Path, metavar="DIR", help="build the store in DIR (must not exist) and keep it")
    args = p.parse_args(argv)
    if args.years < 1 or args.per_day < 1 or args.links < 1 or args.starts < 1:
        p.error("--years, --per-day, --links and --starts are at least 1")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    levels: list[Level] = []
    try:
        with contextlib.ExitStack() as stack:
            if args.keep is not None:
                args.keep.mkdir(parents=True)
                tmp = str(args.keep)
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="itsmd-startup-"))
            store = Store(Path(tmp), args.active)
            _log(f"filling {args.active:,} firing alerts")
            _log(f"filled in {store.fill():.1f} s")
            history_end = time.time() - DAY  # the history ends before the fill, every incident closed by then
            levels.append(measure(store, 0, args))
            for year in range(1, args.years + 1):
                t0 = time.monotonic()
                written = add_year(store, year, history_end, args)
                _log(f"year {year}: {written:,} closed incidents written in {time.monotonic() - t0:.1f} s")
                levels.append(measure(store, year, args))
    except KeyboardInterrupt:
        _log("interrupted: server stopped, temp files removed")
        return 130
    print(table(levels))
    print(f"\nhistory per year: {args.per_day} closed incidents a day x {YEAR_DAYS} days, copies in turn of the "
          f"fill's open incidents (keys, services, titles, rules, SLA targets), {args.links} alerts each (links, "
          f"alert_firing/alert_resolved entries), opened/resolved/closed entries; resolved alerts: {args.alerts}; "
          "daily availability rollup + mark and frozen monthly reports as housekeeping makes them; no audit "
          f"events, problems, changes or runs. {args.active:,} firing alerts, {args.starts} starts per level, "
          "ready = spawn to /-/ready 200, RSS = VmRSS at ready, peak = VmHWM 2 s later. The ms columns time "
          "three start-up reads in the bench's own process on the same file (not the daemon).")  # fmt: skip
    print("\n".join(verdicts(levels, args.active)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
