"""Results of the cases, the tables and ratios printed from them, the goals, and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult

_MIB = 1024 * 1024


@dataclass(frozen=True)
class CaseResult:
    """One workload against one server: measured, skipped (not available here) or failed."""

    workload: str
    target: str
    status: str  # "ok" | "skipped" | "failed"
    reason: str = ""
    wrk: WrkResult | None = None
    peak_rss_bytes: int | None = None
    server_cpu_s: float | None = None  # CPU the server used during the measured run
    pg_cpu_s: float | None = None  # CPU of the PostgreSQL sessions on the case's database during the run
    other_cpu_s: float | None = None  # CPU the rest of the machine (not server, not wrk) used meanwhile
    exit_code: int | None = None  # after SIGTERM at the end (0 or -15 is a clean stop)
    alerts_sent: int | None = None  # by wrk, warm-up and measured run (including requests left in flight)
    server_counted: float | None = None  # the server's own received-alerts counter at the end, if it has one

    @property
    def counted_share(self) -> float | None:
        """Share of the alerts sent that the server says it received: a check that 200 meant something."""
        if self.server_counted is None or not self.alerts_sent:
            return None
        return self.server_counted / self.alerts_sent

    @property
    def alerts_per_s(self) -> float | None:
        return self.wrk.ok_alerts_per_s if self.wrk else None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"workload": self.workload, "target": self.target, "status": self.status}
        if self.reason:
            d["reason"] = self.reason
        if self.wrk is not None:
            w = self.wrk
            d.update(
                duration_s=round(w.duration_s, 3),
                requests=w.requests,
                requests_per_s=round(w.requests_per_s, 1),
                alerts_per_request=round(w.alerts_per_request, 2),
                alerts_per_s=round(w.ok_alerts_per_s, 1),
                p50_ms=w.p50_ms,
                p90_ms=w.p90_ms,
                p99_ms=w.p99_ms,
                max_ms=w.max_ms,
                non2xx=w.non2xx,
                socket_errors=w.socket_errors,
                changed_requests=w.changes,
                wrk_cpu_pct=round(100 * w.wrk_cpu_s / w.duration_s, 1),
            )
        if self.peak_rss_bytes is not None:
            d["peak_rss_mib"] = round(self.peak_rss_bytes / _MIB, 1)
        if self.server_cpu_s is not None and self.wrk is not None:
            d["server_cpu_pct"] = round(100 * self.server_cpu_s / self.wrk.duration_s, 1)
        if self.pg_cpu_s is not None and self.wrk is not None:
            d["pg_cpu_pct"] = round(100 * self.pg_cpu_s / self.wrk.duration_s, 1)
        if self.other_cpu_s is not None and self.wrk is not None:
            d["other_cpu_pct"] = round(100 * self.other_cpu_s / self.wrk.duration_s, 1)
        if self.exit_code is not None:
            d["exit_code"] = self.exit_code
        if self.alerts_sent is not None:
            d["alerts_sent_total"] = self.alerts_sent
            d["server_counted_alerts"] = self.server_counted
        return d


@dataclass(frozen=True)
class Goal:
    """``subject``'s alerts/s on ``workload`` must be at least ``factor`` x the ``versus`` server's."""

    workload: str
    versus: str
    factor: float
    subject: str = "itsmd"

    def describe(self) -> str:
        return f"{self.subject} >= {self.factor:g} x {self.versus} on {self.workload} (alerts/s)"


GOALS: tuple[Goal, ...] = (
    Goal("am-groups", "alertmanager", 0.5),
    Goal("one-alert", "ceiling", 0.5),
    # Issue 14: the leader on PostgreSQL.
    Goal("am-groups", "alertmanager", 1.0, "itsmd-pg"),
    Goal("all-new", "alertmanager", 0.5, "itsmd-pg"),
)
# Each measured itsmd against the servers listed before it in the table, and the PostgreSQL ones against SQLite.
RATIOS: tuple[tuple[str, str], ...] = (
    ("itsmd", "ceiling"),
    ("itsmd", "alertmanager"),
    ("itsmd-pg", "ceiling"),
    ("itsmd-pg", "alertmanager"),
    ("itsmd-pg", "itsmd"),
    ("itsmd-pg-follower", "alertmanager"),
    ("itsmd-pg-follower", "itsmd-pg"),
)

_COLUMNS = (
    ("target", "<", 17), ("req/s", ">", 9), ("alerts/s", ">", 10), ("p50 ms", ">", 8), ("p99 ms", ">", 8),
    ("non-2xx", ">", 8), ("sock err", ">", 8), ("RSS MiB", ">", 8), ("srv CPU", ">", 8), ("wrk CPU", ">", 8),
    ("pg CPU", ">", 7), ("other CPU", ">", 9), ("counted", ">", 8),
)  # fmt: skip


def _row(cells: Sequence[str]) -> str:
    return "  ".join(f"{c:{align}{width}}" for c, (_, align, width) in zip(cells, _COLUMNS, strict=True))


def _cells(r: CaseResult) -> list[str]:
    w = r.wrk
    if w is None:
        lines = r.reason.splitlines()
        # The first line says what went wrong, the last (of the server's log tail) usually why.
        why = lines[0] + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "") if lines else ""
        return [r.target, f"{r.status}: {why}"[:240]]
    rss = f"{r.peak_rss_bytes / _MIB:.1f}" if r.peak_rss_bytes is not None else "-"
    cpu = f"{100 * r.server_cpu_s / w.duration_s:.0f}%" if r.server_cpu_s is not None else "-"
    wrk_cpu = f"{100 * w.wrk_cpu_s / w.duration_s:.0f}%"
    rates = [f"{w.requests_per_s:,.0f}", f"{w.ok_alerts_per_s:,.0f}", f"{w.p50_ms:.2f}", f"{w.p99_ms:.2f}"]
    share = r.counted_share
    counted = "-" if share is None else f"{100 * share:.0f}%"
    other = f"{100 * r.other_cpu_s / w.duration_s:.0f}%" if r.other_cpu_s is not None else "-"
    pg_cpu = f"{100 * r.pg_cpu_s / w.duration_s:.0f}%" if r.pg_cpu_s is not None else "-"
    return [r.target, *rates, f"{w.non2xx:,}", f"{w.socket_errors:,}", rss, cpu, wrk_cpu, pg_cpu, other, counted]


def ratio(results: Iterable[CaseResult], target: str, versus: str) -> float | None:
    """alerts/s of ``target`` over that of ``versus`` (only when both were measured)."""
    rate = {r.target: r.alerts_per_s for r in results if r.status == "ok"}
    a, b = rate.get(target), rate.get(versus)
    return a / b if a is not None and b else None


def workload_table(workload: str, summary: str, results: Sequence[CaseResult]) -> str:
    lines = [f"== {workload}: {summary}", _row([c[0] for c in _COLUMNS])]
    for r in results:
        cells = _cells(r)
        lines.append(_row(cells) if len(cells) == len(_COLUMNS) else "  ".join((f"{cells[0]:<17}", *cells[1:])))
        if r.exit_code not in (None, 0, -15):
            lines.append(f"   ! {r.target} exited {r.exit_code} when stopped with SIGTERM")
    present = {r.target for r in results if r.status == "ok"}
    for subject, versus in RATIOS:
        if subject in present and versus in present:
            q = ratio(results, subject, versus)
            lines.append(f"{subject}/{versus} (alerts/s): " + (f"{q:.2f}" if q is not None else "n/a"))
    return "\n".join(lines)


def goal_lines(results: Sequence[CaseResult]) -> list[str]:
    lines = ["Targets:"]
    for g in GOALS:
        q = ratio([r for r in results if r.workload == g.workload], g.subject, g.versus)
        verdict = "not measured" if q is None else f"{q:.2f} -> {'MET' if q >= g.factor else 'NOT MET'}"
        lines.append(f"  {g.describe()}: {verdict}")
    return lines


def write_json(path: Path, meta: dict[str, Any], summaries: dict[str, str], results: Sequence[CaseResult]) -> None:
    workloads: dict[str, Any] = {}
    for name, summary in summaries.items():
        rs = [r for r in results if r.workload == name]
        workloads[name] = {
            "summary": summary,
            "results": [r.as_dict() for r in rs],
            "ratios": {f"{a}/{b}": ratio(rs, a, b) for a, b in RATIOS},
        }
    goals = []
    for g in GOALS:
        q = ratio([r for r in results if r.workload == g.workload], g.subject, g.versus)
        goals.append({"goal": g.describe(), "ratio": q, "met": None if q is None else q >= g.factor})
    doc = {"meta": meta, "workloads": workloads, "targets": goals}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
