"""The three workloads: which alerts each request carries, written out as a pool file for wrk's Lua script.

Every body is an Alertmanager v2 API array of ``{annotations, endsAt, startsAt, generatorURL, labels}``, the
shape Prometheus POSTs to ``/api/v2/alerts``. Python decides the alerts (labels, annotations, ``startsAt``);
``bench/alerts.lua`` fills in the moving parts per request: ``endsAt`` (send time + 4 min, as Prometheus
does), resolutions and new firing episodes, and the unique label of the ``all-new`` workload.

Each alert is stored as three JSON fragments around its two timestamps::

    pre + <endsAt> + '","startsAt":"' + <startsAt> + post [+ <unique id> + post2]
"""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: Stands in for the unique ``instance`` label of ``all-new`` alerts until Lua replaces it. Characters JSON
#: leaves as they are: a NUL here came out of json.dumps as ``\u0000``, was never found, and every "new" alert
#: was the same one.
_UID_SLOT = "@@uid@@"
#: Lua long-bracket quotes; the fragments are JSON and never contain the closing one.
_OPEN, _CLOSE = "[==[", "]==]"

_ALERTNAMES: tuple[tuple[str, str, str], ...] = (
    # alertname, severity, PromQL expression shown in generatorURL
    (
        "DiskFull",
        "warning",
        'node_filesystem_avail_bytes{mountpoint="/data"} / node_filesystem_size_bytes * 100 < 10',
    ),
    (
        "HighErrorRatio",
        "critical",
        'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05',
    ),
    ("TargetDown", "critical", "up == 0"),
    (
        "HighLatencyP99",
        "warning",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.5",
    ),
    ("PodCrashLooping", "warning", "rate(kube_pod_container_status_restarts_total[15m]) * 60 * 5 > 0"),
    ("MemoryPressure", "warning", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1"),
    ("CPUThrottling", "info", "rate(container_cpu_cfs_throttled_seconds_total[5m]) > 0.25"),
    ("CertificateExpiring", "warning", "probe_ssl_earliest_cert_expiry - time() < 86400 * 14"),
    ("QueueBacklog", "critical", "sum(rabbitmq_queue_messages_ready) > 10000"),
    ("ReplicationLag", "critical", "pg_replication_lag_seconds > 30"),
)
_SERVICES: tuple[tuple[str, str], ...] = (
    # service, team
    ("checkout", "payments"),
    ("postgres", "dba"),
    ("api-gateway", "edge"),
    ("search", "discovery"),
    ("inventory", "supply"),
    ("auth", "identity"),
    ("billing", "payments"),
    ("cart", "payments"),
    ("catalog", "discovery"),
    ("notifications", "platform"),
    ("kafka", "platform"),
    ("redis", "platform"),
    ("ingest", "data"),
    ("reports", "data"),
    ("frontend", "web"),
    ("cdn", "edge"),
    ("shipping", "supply"),
    ("ledger", "finance"),
    ("recommendations", "discovery"),
    ("media", "web"),
)


@dataclass(frozen=True)
class AlertTemplate:
    """One alert as JSON fragments around its timestamps (see the module docstring)."""

    pre: str
    starts_at: str
    post: str
    post2: str | None = None  # set when the alert carries a per-request unique id


@dataclass(frozen=True)
class Workload:
    """A named set of request bodies: a fixed pool of groups (re-sent in turn) or fresh alerts each time."""

    name: str
    summary: str
    mode: str  # "pool": re-send groups from the pool; "new": every alert gets a unique label
    groups: tuple[tuple[AlertTemplate, ...], ...]
    change_fraction: float  # share of requests that change one alert of their group (pool mode)

    @property
    def alerts_in_pool(self) -> int:
        return sum(len(g) for g in self.groups)

    def write_pool(self, path: Path) -> Path:
        """Write the pool as a Lua chunk that ``alerts.lua`` loads with ``dofile``."""
        lines = ["return {", f'  mode = "{self.mode}",', "  groups = {"]
        for group in self.groups:
            lines.append("    {")
            lines.extend(f"      {_lua_alert(a)}," for a in group)
            lines.append("    },")
        lines += ["  },", "}", ""]
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def _lua_str(text: str) -> str:
    if _CLOSE in text:
        raise ValueError(f"fragment contains the Lua closing quote {_CLOSE!r}: {text!r}")
    return f"{_OPEN}{text}{_CLOSE}"


def _lua_alert(a: AlertTemplate) -> str:
    fields = [f"pre={_lua_str(a.pre)}", f"starts={_lua_str(a.starts_at)}", f"post={_lua_str(a.post)}"]
    if a.post2 is not None:
        fields.append(f"post2={_lua_str(a.post2)}")
    return "{" + ", ".join(fields) + "}"


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _template(
    labels: Mapping[str, str], annotations: Mapping[str, str], expr: str, starts_at: datetime
) -> AlertTemplate:
    url = "http://prometheus.example:9090/graph?" + urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "1"})
    pre = '{"annotations":' + _dumps(annotations) + ',"endsAt":"'
    post = '","generatorURL":' + _dumps(url) + ',"labels":' + _dumps(labels) + "}"
    head, sep, tail = post.partition(_UID_SLOT)
    if _UID_SLOT in tail:
        raise ValueError(f"the unique id slot is in the labels twice: {post!r}")
    return AlertTemplate(pre=pre, starts_at=_rfc3339(starts_at), post=head, post2=tail if sep else None)


def _alert(alertname: int, service: int, instance: str, starts_at: datetime) -> AlertTemplate:
    name, severity, expr = _ALERTNAMES[alertname]
    svc, team = _SERVICES[service]
    labels = {
        "alertname": name,
        "cluster": "prod-eu-1",
        "instance": instance,
        "job": svc,
        "namespace": f"{team}-prod",
        "service": svc,
        "severity": severity,
        "team": team,
    }
    annotations = {
        "summary": f"{name} on {svc} ({instance})",
        "description": f"{name} has been firing for {svc} on {instance} (team={team}, severity={severity})",
        "runbook_url": f"https://runbooks.example/{name.lower()}",
    }
    return _template(labels, annotations, expr, starts_at)


def _instance(service: int, n: int) -> str:
    return f"{_SERVICES[service][0]}-{n:03d}.prod-eu-1:9100"


def _past(rng: random.Random, now: datetime) -> datetime:
    """A firing start between 5 minutes and 6 hours ago."""
    return now - timedelta(seconds=rng.uniform(300, 6 * 3600))


def one_alert(rng: random.Random, now: datetime, pool_size: int = 1000) -> Workload:
    groups = []
    for i in range(pool_size):
        a, s = rng.randrange(len(_ALERTNAMES)), rng.randrange(len(_SERVICES))
        groups.append((_alert(a, s, _instance(s, i), _past(rng, now)),))
    return Workload(
        name="one-alert",
        summary=f"1 alert per request from a pool of {pool_size} distinct alerts, re-sent (endsAt moves)",
        mode="pool",
        groups=tuple(groups),
        change_fraction=0.0,
    )


def am_groups(
    rng: random.Random, now: datetime, sizes: Sequence[int] = (5, 50), change_fraction: float = 0.02
) -> Workload:
    groups = []
    for a in range(len(_ALERTNAMES)):
        for s in range(len(_SERVICES)):  # one group per (alertname, service), as group_by does
            size = rng.randint(sizes[0], sizes[1])
            starts = _past(rng, now)
            groups.append(tuple(_alert(a, s, _instance(s, n), starts) for n in range(size)))
    rng.shuffle(groups)
    n_alerts = sum(len(g) for g in groups)
    return Workload(
        name="am-groups",
        summary=(
            f"whole groups of {sizes[0]}-{sizes[1]} alerts (avg {n_alerts / len(groups):.1f}) from a pool of "
            f"{len(groups)} groups, re-sent; {change_fraction:.0%} of requests change one alert "
            "(resolve it, or fire it again with a new startsAt)"
        ),
        mode="pool",
        groups=tuple(groups),
        change_fraction=change_fraction,
    )


def all_new(rng: random.Random, now: datetime, group_size: int = 10) -> Workload:
    a, s = rng.randrange(len(_ALERTNAMES)), rng.randrange(len(_SERVICES))
    starts = _past(rng, now)
    group = tuple(_alert(a, s, f"new-{_UID_SLOT}", starts) for _ in range(group_size))
    return Workload(
        name="all-new",
        summary=f"groups of {group_size} alerts that are all new (a unique instance label on every alert)",
        mode="new",
        groups=(group,),
        change_fraction=0.0,
    )


WORKLOAD_NAMES: tuple[str, ...] = ("one-alert", "am-groups", "all-new")


def build(name: str, seed: int) -> Workload:
    """The workload called ``name``, drawn with ``seed``; its start times are relative to now."""
    rng = random.Random(f"{seed}:{name}")
    now = datetime.now(UTC)
    if name == "one-alert":
        return one_alert(rng, now)
    if name == "am-groups":
        return am_groups(rng, now)
    if name == "all-new":
        return all_new(rng, now)
    raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOAD_NAMES)}")
