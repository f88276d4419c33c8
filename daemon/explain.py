"""`itsmd explain` and `POST /api/v1/explain`: which service, rule, key and priority an alert gets, and why.

Nothing is stored: the answer comes from the same `RuleSet.classify` the correlator uses, for the labels
ingest would keep (empty values dropped, as Alertmanager drops them). The API adds what the alert would do
to the incidents of its key now, from the correlator's own decision (`Correlator.decide`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.catalogue.windows import in_maintenance
from daemon.config import load_config
from daemon.correlate.joining import Decision
from daemon.correlate.ruleset import RuleSet, load_rules
from daemon.durations import format_duration
from daemon.errors import ConfigError
from integrations.alertmanager.fingerprint import fingerprint, without_empty


def explain(rules: RuleSet, labels: Mapping[str, str], annotations: Mapping[str, str], now: float) -> dict[str, Any]:
    """`labels` as ingest keeps them: call `without_empty` first."""
    c = rules.classify(labels, annotations)
    a = c.assessment
    return {
        "labels": dict(labels),
        "fingerprint": fingerprint(labels),
        "service": {
            "name": c.service.name,
            "why": c.service_reason,
            "tier": c.service.tier,
            "team": c.service.team,
            "owner": c.service.owner,
            "in_maintenance": in_maintenance(c.service.maintenance, now),
        },
        "rule": {"name": c.rule.name, "why": c.rule_reason, "group_by": list(c.rule.group_by)},
        "key": c.key,
        "signature": c.signature,
        "priority": {
            "priority": c.priority,
            "impact": a.impact,
            "impact_from": a.impact_from,
            "urgency": a.urgency,
            "urgency_from": a.urgency_from,
        },
        "title": rules.title(c, labels, annotations),
        "targets": {"respond_seconds": c.targets.respond, "resolve_seconds": c.targets.resolve},
        "flapping": c.rule.flapping.model_dump(),
        "recurrence": {**c.rule.recurrence.model_dump(), "signature": list(c.rule.recurrence.signature)},
    }


def incident_answer(decision: Decision) -> dict[str, Any]:
    """`incident`: the one the alert attaches to or reopens (None: a new one opens); `decision`: which, and why."""
    incident = decision.incident
    return {
        "incident": None if incident is None else {"id": incident.id, "status": incident.status.value},
        "decision": {"action": decision.join.value, "why": decision.why},
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="say which service, rule, key and priority an alert gets, and why")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="config file; its rules_dir is used")
    where.add_argument("--rules", type=Path, help="rules folder (services.yaml, correlation.yaml, priority.yaml)")
    p.add_argument("--label", "-l", action="append", default=[], metavar="NAME=VALUE", help="an alert label")
    p.add_argument("--annotation", "-a", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--alert", type=Path, help='a JSON file ("-": stdin) with {"labels": {...}, "annotations": {...}}')
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--{what} {item!r}: use NAME=VALUE")
        out[name] = value
    return out


def main(args: argparse.Namespace, now: float) -> int:
    try:
        rules = load_rules(args.rules) if args.rules is not None else load_config(args.config).rules
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        labels = _pairs(args.label, "label")
        annotations = _pairs(args.annotation, "annotation")
        if args.alert is not None:
            text = sys.stdin.read() if str(args.alert) == "-" else args.alert.read_text(encoding="utf-8")
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("--alert: the JSON must be an object with labels and annotations")
            labels = {**{str(k): str(v) for k, v in dict(doc.get("labels") or {}).items()}, **labels}
            annotations = {**{str(k): str(v) for k, v in dict(doc.get("annotations") or {}).items()}, **annotations}
        labels = without_empty(labels)
        if not labels:
            raise ValueError("an alert needs at least one label with a non-empty value")
    except (ValueError, OSError, TypeError) as exc:
        print(f"itsmd explain: {exc}", file=sys.stderr)
        return 2
    result = explain(rules, labels, annotations, now)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    s, r, p = result["service"], result["rule"], result["priority"]
    maintenance = " (in a maintenance window now: SLA clocks would not run)" if s["in_maintenance"] else ""
    print(f"service:   {s['name']} (tier {s['tier']}) <- {s['why']}{maintenance}")
    print(f"rule:      {r['name']} <- {r['why']}")
    print(f"key:       {result['key']}")
    print(f"alert:     {result['fingerprint']}")
    print(f"signature: {result['signature']}")
    print(
        f"priority:  {p['priority']} = impact {p['impact']} ({p['impact_from']}) x urgency {p['urgency']} "
        f"({p['urgency_from']})"
    )
    t = result["targets"]
    print(f"targets:   respond {_human(t['respond_seconds'])}, resolve {_human(t['resolve_seconds'])}")
    print(f"title:     {result['title']}")
    return 0


def _human(seconds: float | None) -> str:
    return "none (by agreement)" if seconds is None else format_duration(seconds)
