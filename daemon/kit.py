"""`itsmd kit export DIR`: the wiring kit and the JSON Schemas, from the installed package.

The kit (a Prometheus scrape config, alerting rules on itsmd's metrics with their promtool tests, a Grafana
dashboard) ships inside the wheel, so an installed itsmd can hand it out without a checkout of the repository.
Existing files are not overwritten unless asked: a user may have tuned the rules' thresholds.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import TextIO

from daemon import schemas

KIT: tuple[tuple[str, str, str], ...] = (
    ("integrations.prometheus", "scrape.yml", "prometheus/scrape.yml"),
    ("integrations.prometheus", "itsmd.rules.yml", "prometheus/itsmd.rules.yml"),
    ("integrations.prometheus", "itsmd.rules.test.yml", "prometheus/itsmd.rules.test.yml"),
    ("integrations.grafana", "itsmd-dashboard.json", "grafana/itsmd-dashboard.json"),
)
"""(package, resource, path under DIR)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kit = sub.add_parser("kit", help="write the wiring kit (Prometheus, Grafana) and the JSON Schemas to a folder")
    verbs = kit.add_subparsers(dest="verb", required=True)
    export = verbs.add_parser("export", help="write the kit and the schemas into DIR")
    export.add_argument("dir", type=Path)
    export.add_argument("--force", action="store_true", help="overwrite files that exist")


def contents() -> dict[str, str]:
    """Every file of the kit by its path under the export folder."""
    out = {target: resources.files(package).joinpath(name).read_text(encoding="utf-8") for package, name, target in KIT}
    for kind in schemas.KINDS:
        out[f"schemas/{schemas.file_name(kind)}"] = schemas.render(kind)
    return out


def export(folder: Path, *, force: bool, out: TextIO) -> list[str]:
    """Write the kit; returns the paths it refused to overwrite (nothing is written then)."""
    files = contents()
    existing = [path for path in files if (folder / path).exists()]
    if existing and not force:
        return existing
    for path, text in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=out)
    return []


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        refused = export(args.dir, force=args.force, out=out)
    except OSError as exc:
        print(f"itsmd kit export: {exc.filename or args.dir}: {exc.strerror or exc}", file=err)
        return 1
    if refused:
        for path in refused:
            print(f"itsmd kit export: {args.dir / path} exists (use --force to overwrite)", file=err)
        return 1
    return 0
