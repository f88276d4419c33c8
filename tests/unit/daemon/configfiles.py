"""Writing config files in tests and reading back the problems itsmd finds in them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from daemon.config import LoadedConfig, load_config
from daemon.errors import ConfigError
from tests.postgres import storage_section


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


def on_test_backend(loaded: LoadedConfig) -> LoadedConfig:
    """The config with its storage on the backend under test (ITSMD_TEST_BACKEND): unchanged on SQLite, or
    when the config names a backend itself; else a PostgreSQL database of the test's own for its data_dir."""
    section = storage_section(loaded.config.data_dir)
    storage = loaded.config.storage
    if not section or "backend" in storage.model_fields_set:
        return loaded
    moved = type(storage).model_validate(
        {**storage.model_dump(include=storage.model_fields_set), **section},
        context={"base_dir": loaded.path.resolve().parent},
    )
    return dataclasses.replace(loaded, config=loaded.config.model_copy(update={"storage": moved}))


def load_test_config(path: Path, *, listen: str | None = None, data_dir: Path | None = None) -> LoadedConfig:
    """load_config, on the backend under test: what a test that builds a daemon from a config file calls."""
    return on_test_backend(load_config(path, listen=listen, data_dir=data_dir))
