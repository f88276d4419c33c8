"""`itsmd check`: every problem of every file given, in one pass, like `promtool check`.

One `file:line: key: message` line per problem on stderr, then one line per argument: `PATH: SUCCESS` on stdout
or `PATH: FAILED: N problem(s)` on stderr; exit 1 if any argument has a problem.

A config is checked together with the rules folder and runbooks folder it names, also when the config itself
has problems. A rule file is checked by itself: the services of drills.yaml against services.yaml beside it,
its runbooks against the runbooks folder of a config in the same run whose rules_dir is that folder. A
cross-file reference that cannot be checked (the other file is missing or has problems of its own) is said so
on stdout and never hides the file's own problems; the other file's problems belong to that file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from daemon.catalogue.services import load_catalogue
from daemon.config import check_config
from daemon.correlate.priority import load_priority_rules
from daemon.correlate.rules import load_correlation_rules
from daemon.correlate.ruleset import RULE_FILES, check_rules
from daemon.drills.spec import check_drills
from daemon.errors import ConfigError, ConfigProblem
from daemon.runbook.check import check_runbook_files, runbook_files
from daemon.runbook.library import LoadedRunbook
from daemon.yamlsource import load_yaml

Triggers = Mapping[str, Collection[str]]
"""Runbook name -> its trigger.on values: what a drill's runbook reference is checked against."""


@dataclass
class Report:
    """What checking one argument found: its problems, and lines about what was checked (for stdout)."""

    problems: list[ConfigProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(paths: Sequence[Path], out: TextIO, err: TextIO) -> int:
    runbooks_of = _runbooks_named_by_configs(paths)
    failed = False
    for path in paths:
        report = Report()
        try:
            check_path(path, report, runbooks_of)
        except ConfigError as exc:  # the file cannot be read or parsed at all
            report.problems.extend(exc.problems)
        for note in report.notes:
            print(f"{path}: {note}", file=out)
        for problem in report.problems:
            print(problem, file=err)
        if report.problems:
            failed = True
            print(f"{path}: FAILED: {len(report.problems)} problem(s)", file=err)
        else:
            print(f"{path}: SUCCESS", file=out)
    return 1 if failed else 0


def check_path(path: Path, report: Report, runbooks_of: Mapping[Path, Path]) -> None:
    """One argument: a rules or runbooks folder, a rule file (by its name), a runbook, or else a config."""
    if path.is_dir():
        if _is_rules_dir(path):
            runbooks = _runbooks_for(path, runbooks_of, report)
            _, problems = check_rules(path, runbooks)
            report.problems.extend(problems)
        else:
            found, problems = check_runbook_files(runbook_files(path))
            report.problems.extend(problems)
            if not problems:
                report.notes.append(f"{len(found)} runbook(s): SUCCESS")
    elif path.name in RULE_FILES:
        _check_rule_file(path, report, runbooks_of)
    elif _is_runbook(path):
        report.problems.extend(check_runbook_files([path])[1])
    else:
        _check_config(path, report)


def _check_config(path: Path, report: Report) -> None:
    config, problems = check_config(path)
    report.problems.extend(problems)
    if config is None:
        return
    folder = config.runbooks.dir
    runbooks: Triggers | None = {}  # no folder: the daemon runs without runbooks, so a drill's cannot exist
    runbook_problems: list[ConfigProblem] = []
    if folder.is_dir():
        found, runbook_problems = check_runbook_files(runbook_files(folder))
        runbooks = None if runbook_problems else _triggers(found)
    rules = None
    if config.rules_dir is not None:
        rules, problems = check_rules(config.rules_dir, runbooks)
        report.problems.extend(problems)
        if rules is not None:
            report.notes.append(f"rules from {config.rules_dir}: SUCCESS")
    report.problems.extend(runbook_problems)
    if folder.is_dir() and runbooks is not None:
        report.notes.append(f"{len(runbooks)} runbook(s) from {folder}: SUCCESS")
    if config.rules_dir is not None and rules is not None and rules.drills:
        drills = config.rules_dir / "drills.yaml"
        if runbooks is None:
            report.notes.append(f"runbooks of the drills in {drills} not checked: {folder} has problems")
        else:
            report.notes.append(f"{len(rules.drills)} drill(s) from {drills}, references resolved: SUCCESS")


def _check_rule_file(path: Path, report: Report, runbooks_of: Mapping[Path, Path]) -> None:
    try:
        if path.name == "correlation.yaml":
            load_correlation_rules(path)
        elif path.name == "services.yaml":
            load_catalogue(path)
        elif path.name == "priority.yaml":
            load_priority_rules(path)
        else:
            services = _services_beside(path, report)
            check_drills(path, services=services, runbooks=_runbooks_for(path.parent, runbooks_of, report))
    except ConfigError as exc:
        report.problems.extend(exc.problems)


def _services_beside(drills: Path, report: Report) -> list[str] | None:
    catalogue = drills.parent / "services.yaml"
    if not catalogue.is_file():
        report.notes.append(f"services of the drills not checked: there is no {catalogue}")
        return None
    try:
        return load_catalogue(catalogue).names()
    except ConfigError:
        report.notes.append(f"services of the drills not checked: {catalogue} has problems (check it)")
        return None


def _runbooks_for(rules_dir: Path, runbooks_of: Mapping[Path, Path], report: Report) -> Triggers | None:
    """The runbooks a config in the same run names for this rules folder, when they are all valid."""
    if not (rules_dir / "drills.yaml").is_file():
        return None
    folder = runbooks_of.get(rules_dir.resolve())
    if folder is None:
        report.notes.append(f"runbooks of the drills not checked: no config in this check has rules_dir {rules_dir}")
        return None
    if not folder.is_dir():
        return {}  # the daemon runs without runbooks then: a drill's runbook cannot exist
    found, problems = check_runbook_files(runbook_files(folder))
    if problems:
        report.notes.append(f"runbooks of the drills not checked: {folder} has problems (check it)")
        return None
    return _triggers(found)


def _runbooks_named_by_configs(paths: Sequence[Path]) -> dict[Path, Path]:
    """Rules folder -> runbooks folder, of the configs among paths (with whatever of them is valid)."""
    named: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir() or path.name in RULE_FILES:
            continue
        try:
            if _is_runbook(path):
                continue
            config, _ = check_config(path)
        except ConfigError:
            continue
        if config is not None and config.rules_dir is not None:
            named.setdefault(config.rules_dir.resolve(), config.runbooks.dir)
    return named


def _triggers(runbooks: Sequence[LoadedRunbook]) -> Triggers:
    return {rb.spec.name: [t.value for t in rb.spec.trigger.on] if rb.spec.trigger else [] for rb in runbooks}


def _is_rules_dir(path: Path) -> bool:
    """A rules folder holds the catalogue, correlation, priority or drills file; any other folder is runbooks."""
    return any((path / name).is_file() for name in RULE_FILES)


def _is_runbook(path: Path) -> bool:
    """A runbook has steps; a config file never does."""
    doc = load_yaml(path)
    return isinstance(doc.data, dict) and "steps" in doc.data
