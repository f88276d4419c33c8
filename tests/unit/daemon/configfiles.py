"""Writing config files in tests and reading back the problems itsmd finds in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for problem in caught.value.problems:
        assert problem.file == str(path)
    return [(p.line, p.key, p.message) for p in caught.value.problems]


TEST_SERVICES = ("api", "db", "checkout", "postgres")


def write_rules(folder: Path, services: tuple[str, ...] = TEST_SERVICES, correlation: str = "{}\n") -> Path:
    """A rules folder whose catalogue lists `services` (each matching its own service label)."""
    write(folder / "correlation.yaml", correlation)
    listed = "".join(f"  - name: {name}\n" for name in services)
    write(folder / "services.yaml", f"services:\n{listed}" if services else "{}\n")
    return folder
